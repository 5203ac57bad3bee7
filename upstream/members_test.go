package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// instance returns one instance's client of the fleet's pool in srv, its environment's list env.
func instance(t *testing.T, srv *redistest.Server, name string, env ...string) *Client {
	t.Helper()
	return newPool(t, Options{Redis: client(t, srv), PoolSecret: testPoolSecret, Instance: name}, env...)
}

// testPoolSecret signs the members of the tests' fleet pools.
const testPoolSecret = "0123456789abcdef0123456789abcdef"

// signed is a member as an instance with testPoolSecret writes it.
func signed(url, source string) string {
	m := &members{key: []byte(testPoolSecret)}
	return string(m.encode(member{URL: url, Source: source, Added: time.Now()}))
}

// stored is the fleet's pool in Redis: URL → member.
func stored(t *testing.T, rdb redis.UniversalClient) map[string]member {
	t.Helper()
	h, err := rdb.HGetAll(context.Background(), poolKey).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", poolKey, err)
	}
	out := map[string]member{}
	for k, v := range h {
		var m member
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			t.Fatalf("member %s = %q: %v", k, v, err)
		}
		m.URL = k
		out[k] = m
	}
	return out
}

// subscribed waits until n instances listen to the pool's channel.
func subscribed(t *testing.T, rdb redis.UniversalClient, n int64) {
	t.Helper()
	testenv.WaitFor(t, 2*time.Second, "the instances to subscribe", func() bool {
		m, err := rdb.PubSubNumSub(context.Background(), poolChannel).Result()
		return err == nil && m[poolChannel] == n
	})
}

func storedURLs(t *testing.T, rdb redis.UniversalClient) []string {
	t.Helper()
	var out []string
	for k := range stored(t, rdb) {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestTheEnvironmentsListSeedsAnEmptyRedisAndTheFleetsPoolWinsAfter(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 3)
	a := instance(t, srv, "a", bs[0].url, bs[1].url+"/")
	before := time.Now().Add(-time.Second)
	a.Sync(t.Context())
	want := sorted(bs[0].url, bs[1].url)
	if got := storedURLs(t, rdb); !slices.Equal(got, want) {
		t.Fatalf("Redis holds %v after the first Sync, want the environment's list %v", got, want)
	}
	for _, m := range stored(t, rdb) {
		if m.Source != SourceEnv || m.Added.Before(before) || time.Since(m.Added) > time.Minute {
			t.Errorf("member %+v, want source env, added now", m)
		}
	}
	if got := ids(a); !slices.Equal(got, want) {
		t.Errorf("instance a's pool = %v, want %v", got, want)
	}

	// Another instance with another list: before Sync its own, after it the fleet's.
	b := instance(t, srv, "b", bs[2].url)
	if got := ids(b); !slices.Equal(got, []string{bs[2].url}) {
		t.Errorf("instance b's pool before Sync = %v, want its environment's", got)
	}
	b.Sync(t.Context())
	if got := ids(b); !slices.Equal(got, want) {
		t.Errorf("instance b's pool after Sync = %v, want the fleet's %v", got, want)
	}
	if got := storedURLs(t, rdb); !slices.Equal(got, want) {
		t.Errorf("Redis holds %v after b's Sync, want it unchanged", got)
	}
	for range 4 {
		if got := mustFetch(t, b, "", "/x"); got == bs[2].name {
			t.Fatal("instance b still sends to the backend of its environment, which the fleet does not have")
		}
	}
}

func TestAddAndRemoveReachTheWholeFleet(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 3)
	a := instance(t, srv, "a", bs[0].url, bs[1].url)
	b := instance(t, srv, "b", bs[0].url, bs[1].url)
	a.Sync(t.Context())
	b.Sync(t.Context())
	runPool(t, a)
	runPool(t, b)
	subscribed(t, rdb, 2)

	s, err := a.Add(t.Context(), bs[2].url)
	if err != nil {
		t.Fatalf("Add through a: %v", err)
	}
	if s.URL != bs[2].url || s.State != "up" || s.Source != SourceAPI {
		t.Errorf("Add = %+v", s)
	}
	if !slices.Contains(ids(a), bs[2].url) {
		t.Errorf("a's pool = %v right after its Add, want %s in it", ids(a), bs[2].url)
	}
	testenv.WaitFor(t, time.Second, "b to see the backend added through a", func() bool {
		return slices.Contains(ids(b), bs[2].url)
	})
	if got := server(t, b, bs[2].url); got.Source != SourceAPI || got.State != "up" {
		t.Errorf("b sees the added backend as %+v", got)
	}
	if m := stored(t, rdb)[bs[2].url]; m.Source != SourceAPI {
		t.Errorf("Redis holds %+v for the added backend, want source api", m)
	}

	hp := strings.TrimPrefix(bs[0].url, "http://")
	if id, err := b.Remove(t.Context(), hp); err != nil || id != bs[0].url {
		t.Fatalf("Remove(%s) through b = %q, %v", hp, id, err)
	}
	testenv.WaitFor(t, time.Second, "a to drop the backend removed through b", func() bool {
		return !slices.Contains(ids(a), bs[0].url)
	})
	want := sorted(bs[1].url, bs[2].url)
	if !slices.Equal(ids(a), want) || !slices.Equal(ids(b), want) || !slices.Equal(storedURLs(t, rdb), want) {
		t.Errorf("pools a %v, b %v, Redis %v; want all %v", ids(a), ids(b), storedURLs(t, rdb), want)
	}

	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"add again through b", func() error { _, err := b.Add(t.Context(), bs[2].url); return err }, ErrExists},
		{"add bad", func() error { _, err := b.Add(t.Context(), "http://x/#f"); return err }, ErrBadBackend},
		{"remove absent", func() error { _, err := a.Remove(t.Context(), bs[0].url); return err }, ErrNotFound},
	}
	for _, tt := range tests {
		if err := tt.op(); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := a.Remove(t.Context(), bs[1].url); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Remove(t.Context(), bs[2].url); !errors.Is(err, ErrLastBackend) {
		t.Errorf("removing the fleet's last backend: %v, want ErrLastBackend", err)
	}
	testenv.WaitFor(t, time.Second, "both pools down to one backend", func() bool {
		return slices.Equal(ids(a), []string{bs[2].url}) && slices.Equal(ids(b), []string{bs[2].url})
	})
}

func TestTheFleetsPoolHoldsAtMostMaxBackends(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	a := instance(t, srv, "a", "http://127.0.0.1:1")
	a.Sync(t.Context())
	v, _ := json.Marshal(member{Source: SourceAPI, Added: time.Now()})
	for i := 2; i <= MaxBackends; i++ {
		if err := rdb.HSet(t.Context(), poolKey, "http://127.0.0.1:"+strconv.Itoa(i), v).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Add(t.Context(), "http://127.0.0.1:9999"); !errors.Is(err, ErrPoolFull) {
		t.Errorf("Add to a full fleet pool: %v, want ErrPoolFull", err)
	}
	if n := len(storedURLs(t, rdb)); n != MaxBackends {
		t.Errorf("Redis holds %d backends, want %d", n, MaxBackends)
	}
}

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

func TestWithRedisGoneThePoolIsKeptAndChangesAreRefused(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 3)
	a := instance(t, srv, "a", bs[0].url, bs[1].url)
	b := instance(t, srv, "b", bs[2].url)
	a.Sync(t.Context())
	b.Sync(t.Context())
	runPool(t, a)
	runPool(t, b)
	if _, err := a.Add(t.Context(), bs[2].url); err != nil {
		t.Fatal(err)
	}
	b.Sync(t.Context())
	want := sorted(bs[0].url, bs[1].url, bs[2].url)
	if !slices.Equal(ids(b), want) {
		t.Fatalf("b's pool = %v, want %v", ids(b), want)
	}

	srv.Stop()
	start := time.Now()
	if _, err := a.Add(t.Context(), "http://127.0.0.1:1"); !errors.Is(err, ErrPoolStore) {
		t.Errorf("Add with Redis gone: %v, want ErrPoolStore", err)
	}
	if _, err := b.Remove(t.Context(), bs[0].url); !errors.Is(err, ErrPoolStore) {
		t.Errorf("Remove with Redis gone: %v, want ErrPoolStore", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("refusing two changes took %v, want each within the pool's Redis timeout", elapsed)
	}
	a.Sync(t.Context())
	b.Sync(t.Context())
	for _, c := range []*Client{a, b} {
		if got := ids(c); !slices.Equal(got, want) {
			t.Errorf("instance %s's pool = %v with Redis gone, want the last one %v", c.Instance(), got, want)
		}
		for range 3 {
			mustFetch(t, c, "", "/x")
		}
	}

	// Redis comes back empty (no persistence): the next load seeds it again with the pool of
	// whichever instance loads first (a's Sync, or a watch that reconnected), which is the
	// fleet's last one, the backend added through the API included; the fleet follows.
	srv.Restart()
	a.Sync(t.Context())
	b.Sync(t.Context())
	got := storedURLs(t, rdb)
	if !slices.Equal(got, want) {
		t.Fatalf("Redis after the restart = %v, want the fleet's last pool %v", got, want)
	}
	for _, c := range []*Client{a, b} {
		if pool := ids(c); !slices.Equal(pool, got) {
			t.Errorf("instance %s's pool = %v, want the fleet's %v", c.Instance(), pool, got)
		}
	}
}

// An Add to a Redis that lost the pool seeds it first: the fleet keeps the environment's
// backends rather than only the one added.
func TestAnAddToAnEmptyRedisSeedsItFirst(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 3)
	a := instance(t, srv, "a", bs[0].url, bs[1].url)
	if _, err := a.Add(t.Context(), bs[2].url); err != nil {
		t.Fatal(err)
	}
	want := sorted(bs[0].url, bs[1].url, bs[2].url)
	if got := storedURLs(t, rdb); !slices.Equal(got, want) {
		t.Errorf("Redis = %v, want %v", got, want)
	}
	if got := ids(a); !slices.Equal(got, want) {
		t.Errorf("pool = %v, want %v", got, want)
	}
}

// A change published before an instance's watch subscribed (between its Sync and its Run, or
// while its connection to Redis was down) reaches it when the watch begins, not at the next poll.
func TestAnInstanceCatchesUpWithChangesMadeBeforeItsWatchBegan(t *testing.T) {
	srv := redistest.Start(t)
	bs := startBackends(t, 2)
	a := instance(t, srv, "a", bs[0].url)
	b := instance(t, srv, "b", bs[0].url)
	b.Sync(t.Context())
	if _, err := a.Add(t.Context(), bs[1].url); err != nil { // published to nobody
		t.Fatal(err)
	}
	runPool(t, b)
	testenv.WaitFor(t, time.Second, "b to load the backend added before its Run", func() bool {
		return slices.Contains(ids(b), bs[1].url)
	})
}

func TestAfterRedisRestartsEmptyTheRunningFleetSeedsItAgainAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 3)
	a := instance(t, srv, "a", bs[0].url, bs[1].url)
	b := instance(t, srv, "b", bs[0].url, bs[1].url)
	a.Sync(t.Context())
	b.Sync(t.Context())
	if _, err := a.Add(t.Context(), bs[2].url); err != nil {
		t.Fatal(err)
	}
	b.Sync(t.Context())
	runPool(t, a)
	runPool(t, b)
	subscribed(t, rdb, 2)

	srv.Stop()
	srv.Restart() // empty: no persistence
	// No Sync: the instances' watches reconnect and load, and the first load seeds the pool
	// that instance holds: the backend added through the API survives Redis's data.
	seeded := sorted(bs[0].url, bs[1].url, bs[2].url)
	testenv.WaitFor(t, 2*time.Second, "Redis seeded again and both pools following it", func() bool {
		n, err := rdb.HLen(context.Background(), poolKey).Result()
		return err == nil && n == 3 && slices.Equal(ids(a), seeded) && slices.Equal(ids(b), seeded)
	})
	if got := storedURLs(t, rdb); !slices.Equal(got, seeded) {
		t.Errorf("Redis = %v, want %v", got, seeded)
	}
	subscribed(t, rdb, 2)
	if _, err := b.Remove(t.Context(), bs[2].url); err != nil {
		t.Fatalf("Remove after the restart: %v", err)
	}
	testenv.WaitFor(t, time.Second, "a to see the backend removed through b after the restart", func() bool {
		return !slices.Contains(ids(a), bs[2].url)
	})
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

// An instance that missed an addition (its watch was down) and is asked to add the same backend
// learns it from the refusal.
func TestAnAddRefusedAsPresentReloadsThePool(t *testing.T) {
	srv := redistest.Start(t)
	bs := startBackends(t, 2)
	a := instance(t, srv, "a", bs[0].url)
	b := instance(t, srv, "b", bs[0].url)
	a.Sync(t.Context())
	b.Sync(t.Context())
	if _, err := a.Add(t.Context(), bs[1].url); err != nil {
		t.Fatal(err)
	}
	// b runs no watch: it missed the message.
	if _, err := b.Add(t.Context(), bs[1].url); !errors.Is(err, ErrExists) {
		t.Fatalf("b.Add of a present backend: %v, want ErrExists", err)
	}
	if !slices.Contains(ids(b), bs[1].url) {
		t.Errorf("b's pool after ErrExists = %v, want it to list %s", ids(b), bs[1].url)
	}
}

// A reload whose load began before another's was applied does not undo it (an Add's reload and
// the poll's may cross).
func TestAnOlderReloadDoesNotUndoANewerOne(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 2)
	a := instance(t, srv, "a", bs[0].url)
	a.Sync(t.Context())
	old, err := a.members.load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	seq := a.loads.Add(1) // the older load: taken before the change
	if err := rdb.HSet(t.Context(), poolKey, bs[1].url, signed(bs[1].url, SourceAPI)).Err(); err != nil {
		t.Fatal(err)
	}
	a.Sync(t.Context()) // the newer load, applied first
	want := sorted(bs[0].url, bs[1].url)
	if got := ids(a); !slices.Equal(got, want) {
		t.Fatalf("pool = %v, want %v", got, want)
	}
	a.applyLoaded(seq, old) // the older one arrives late
	if got := ids(a); !slices.Equal(got, want) {
		t.Errorf("pool after a late older load = %v, want %v still", got, want)
	}
}

// An instance whose SWR_UPSTREAM is not the fleet's pool says so at Sync: its list does nothing.
func TestSyncWarnsWhenTheEnvironmentsListIsNotTheFleets(t *testing.T) {
	srv := redistest.Start(t)
	bs := startBackends(t, 2)
	a := instance(t, srv, "a", bs[0].url)
	a.Sync(t.Context())
	var logs syncLog
	b := newPool(t, Options{Redis: client(t, srv), PoolSecret: testPoolSecret, Instance: "b", Log: slog.New(slog.NewTextHandler(&logs, nil))}, bs[1].url)
	b.Sync(t.Context())
	if s := logs.String(); !strings.Contains(s, "SWR_UPSTREAM differs from the fleet's pool") || !strings.Contains(s, bs[0].url) {
		t.Errorf("b's log after Sync = %q, want a warning naming the fleet's pool", s)
	}
	logs.Reset()
	a.Sync(t.Context())
	c := newPool(t, Options{Redis: client(t, srv), PoolSecret: testPoolSecret, Instance: "c", Log: slog.New(slog.NewTextHandler(&logs, nil))}, bs[0].url)
	c.Sync(t.Context())
	if s := logs.String(); strings.Contains(s, "differs") {
		t.Errorf("an instance whose list is the fleet's logged %q", s)
	}
}

// syncLog is a log destination safe for the pool's goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *syncLog) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
func (l *syncLog) Reset()                      { l.mu.Lock(); defer l.mu.Unlock(); l.b.Reset() }

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
