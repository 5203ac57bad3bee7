package upstream

import (
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

func TestAMemberInRedisThatIsNoBackendIsIgnored(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 2)
	for k, v := range map[string]string{
		bs[0].url:                 signed(bs[0].url, SourceEnv),
		bs[1].url:                 signed(bs[1].url, SourceAPI),
		"http://127.0.0.1:1/json": `not json`,
		"ftp://x":                 signed("ftp://x", SourceAPI),
		"HTTP://Upper:8080":       signed("HTTP://Upper:8080", SourceAPI),
	} {
		if err := rdb.HSet(t.Context(), poolKey, k, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
	a := instance(t, srv, "a", "http://127.0.0.1:1")
	a.Sync(t.Context())
	if got, want := ids(a), sorted(bs[0].url, bs[1].url); !slices.Equal(got, want) {
		t.Fatalf("pool = %v, want %v (the bad members left out)", got, want)
	}
	if s := server(t, a, bs[1].url); s.Source != SourceAPI {
		t.Errorf("a signed api member: source %q, want api", s.Source)
	}
}

// A member written into Redis without the secret (by anyone who can write Redis) gets no
// traffic: it would get every request, credentials included (security review). If nothing the
// fleet signed is left, the instance's own pool becomes the fleet's again.
func TestAMemberWrittenIntoRedisWithoutTheSecretIsIgnored(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 2)
	a := instance(t, srv, "a", bs[0].url)
	a.Sync(t.Context())
	forged := (&members{key: []byte("another secret, not the fleet's!")}).encode(member{URL: bs[1].url, Source: SourceAPI})
	for _, v := range []string{`{"source":"api"}`, string(forged)} {
		if err := rdb.HSet(t.Context(), poolKey, bs[1].url, v).Err(); err != nil {
			t.Fatal(err)
		}
		a.Sync(t.Context())
		if got := ids(a); !slices.Equal(got, []string{bs[0].url}) {
			t.Fatalf("pool after a member %s was written without the secret = %v, want only %s", v, got, bs[0].url)
		}
	}
	for range 4 {
		mustFetch(t, a, "", "/x")
	}
	if n := bs[1].hits.Load(); n != 0 {
		t.Errorf("the forged backend got %d requests", n)
	}
	// Every member forged: the hash becomes this instance's pool again.
	if err := rdb.Del(t.Context(), poolKey).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(t.Context(), poolKey, bs[1].url, forged).Err(); err != nil {
		t.Fatal(err)
	}
	a.Sync(t.Context())
	if got := storedURLs(t, rdb); !slices.Equal(got, []string{bs[0].url}) || !slices.Equal(ids(a), got) {
		t.Errorf("after a hash of forged members: Redis %v, pool %v; want both %s", got, ids(a), bs[0].url)
	}
}

// Without a secret the API that changes the pool is off, and Redis is not read for it either:
// the pool is the environment's.
func TestWithoutASecretThePoolIsTheEnvironments(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 2)
	if err := rdb.HSet(t.Context(), poolKey, bs[1].url, signed(bs[1].url, SourceAPI)).Err(); err != nil {
		t.Fatal(err)
	}
	c := newPool(t, Options{Redis: rdb}, bs[0].url)
	c.Sync(t.Context())
	if got := ids(c); !slices.Equal(got, []string{bs[0].url}) {
		t.Errorf("pool without a secret = %v, want the environment's %s", got, bs[0].url)
	}
}

// A fleet's pool that lists no valid backend (a hand-edited hash) leaves an instance's pool as it
// was: it would otherwise answer every request ErrAllDown.
func TestAFleetPoolWithoutAValidBackendLeavesThePoolAlone(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 1)
	a := instance(t, srv, "a", bs[0].url)
	a.Sync(t.Context())
	if err := rdb.Del(t.Context(), poolKey).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(t.Context(), poolKey, "ftp://x", `{"source":"api"}`, "not a url", `{}`).Err(); err != nil {
		t.Fatal(err)
	}
	a.Sync(t.Context())
	if got := ids(a); !slices.Equal(got, []string{bs[0].url}) {
		t.Fatalf("pool = %v after loading a pool of bad members, want the one it had", got)
	}
	mustFetch(t, a, "", "/x")
}

// A pool hash grown far past MaxBackends (written by hand: the API stops at MaxBackends) is not
// read into memory: the load fails and the pool stays as it was (security review: 30 000
// members cost 172 MB a reload on every instance).
func TestAHugePoolHashIsRefusedWhole(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 1)
	a := instance(t, srv, "a", bs[0].url)
	a.Sync(t.Context())
	pairs := []any{}
	for i := range maxLoaded + 1 {
		pairs = append(pairs, "http://127.0.0.1:"+strconv.Itoa(20000+i), `{"source":"api"}`)
	}
	if err := rdb.HSet(t.Context(), poolKey, pairs...).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.members.load(t.Context()); !errors.Is(err, ErrPoolStore) {
		t.Errorf("load of %d members: %v, want ErrPoolStore", maxLoaded+2, err)
	}
	a.Sync(t.Context())
	if got := ids(a); !slices.Equal(got, []string{bs[0].url}) {
		t.Errorf("pool = %d backends after a refused load, want the one it had", len(got))
	}
}
