package upstream

import (
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

func testTheEnvironmentsListSeedsAnEmptyRedisAndTheFleetsPoolWinsAfter(t *testing.T, srv redistest.Topology) {
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

func testAddAndRemoveReachTheWholeFleet(t *testing.T, srv redistest.Topology) {
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

func testTheFleetsPoolHoldsAtMostMaxBackends(t *testing.T, srv redistest.Topology) {
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

// An Add to a Redis that lost the pool seeds it first: the fleet keeps the environment's
// backends rather than only the one added.
func testAnAddToAnEmptyRedisSeedsItFirst(t *testing.T, srv redistest.Topology) {
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
func testAnInstanceCatchesUpWithChangesMadeBeforeItsWatchBegan(t *testing.T, srv redistest.Topology) {
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

// An instance that missed an addition (its watch was down) and is asked to add the same backend
// learns it from the refusal.
func testAnAddRefusedAsPresentReloadsThePool(t *testing.T, srv redistest.Topology) {
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
func testAnOlderReloadDoesNotUndoANewerOne(t *testing.T, srv redistest.Topology) {
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
func testSyncWarnsWhenTheEnvironmentsListIsNotTheFleets(t *testing.T, srv redistest.Topology) {
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
