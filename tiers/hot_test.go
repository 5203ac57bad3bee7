package tiers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/internal/redisconn"
	"github.com/swrproxy/swrproxy/internal/redistest"
)

// Hotness is the fleet's: keys one instance marks hot (in one pipeline, whose keys a cluster
// spreads over its masters) are hot to another, for their window only; others are cold.
func testHotnessIsSharedAcrossInstances(t *testing.T, srv redistest.Topology) {
	a, b := newStore(t, srv.Connect(t)), newStore(t, srv.Connect(t))
	ctx := t.Context()
	var keys []string
	for i := range 50 {
		keys = append(keys, fmt.Sprintf("/h/%d", i))
	}
	if err := a.MarkHot(ctx, keys, time.Minute); err != nil {
		t.Fatalf("MarkHot: %v", err)
	}
	if err := a.MarkHot(ctx, []string{"/brief"}, 50*time.Millisecond); err != nil {
		t.Fatalf("MarkHot: %v", err)
	}
	for _, k := range keys {
		if !b.IsHot(ctx, k) {
			t.Errorf("%s marked hot on one instance is not hot on the other", k)
		}
	}
	if b.IsHot(ctx, "/cold") {
		t.Error("/cold is hot, though nobody asked for it")
	}
	time.Sleep(100 * time.Millisecond) // the brief key's window runs out: the time itself is under test
	if b.IsHot(ctx, "/brief") {
		t.Error("/brief is still hot after its window")
	}
}

// TestManyHotKeysAreMarkedInBatches: the keys a burst of fills made hot go to Redis in
// pipelines of at most markHotBatch keys, one after another, so that other clients are answered
// between them (one pipeline of 20 000 marks and a 20 000-member ZADD kept Redis from answering
// anyone for a whole deadline on a loaded 2-core machine: breakers opened and L1s were dropped).
// Every key is still marked, and the hot set still holds the newest HotSetMax.
func TestManyHotKeysAreMarkedInBatches(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	s := newStore(t, rdb)
	ctx := t.Context()
	keys := make([]string, HotSetMax+markHotBatch/2) // 21 batches, the hot set full after 20
	for i := range keys {
		keys[i] = fmt.Sprintf("/burst/%d", i)
	}
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	if err := s.MarkHot(ctx, keys, time.Minute); err != nil {
		t.Fatalf("MarkHot: %v", err)
	}
	stats, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	for _, want := range []string{"cmdstat_zadd:calls=21,", fmt.Sprintf("cmdstat_set:calls=%d,", len(keys))} {
		if !strings.Contains(stats, want) {
			t.Errorf("INFO commandstats has no %q: %d keys were not marked in 21 batches\n%s", want, len(keys), stats)
		}
	}
	for _, k := range []string{keys[0], keys[markHotBatch], keys[len(keys)-1]} { // marked, in the hot set or not
		if !s.IsHot(ctx, k) {
			t.Errorf("%s is not hot", k)
		}
	}
	if n, err := rdb.ZCard(ctx, hotSet).Result(); err != nil || n != int64(min(len(keys), HotSetMax)) {
		t.Errorf("the hot set holds %d keys (%v), want %d", n, err, min(len(keys), HotSetMax))
	}
}

// TestAnOlderMarkNeverLowersANewerOneInTheHotSet: the hot set ranks keys by when they were last
// asked for on any instance; an instance sharing later a mark scored earlier (here: another
// instance's mark, an hour ahead of this clock) leaves the newer score, and adds new keys.
func TestAnOlderMarkNeverLowersANewerOneInTheHotSet(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	s := newStore(t, rdb)
	ctx := t.Context()
	newer := float64(time.Now().Add(time.Hour).UnixMilli())
	if err := rdb.ZAdd(ctx, hotSet, redis.Z{Score: newer, Member: "/polled"}).Err(); err != nil {
		t.Fatalf("ZADD: %v", err)
	}
	if err := s.MarkHot(ctx, []string{"/polled", "/new"}, time.Minute); err != nil {
		t.Fatalf("MarkHot: %v", err)
	}
	if got, err := rdb.ZScore(ctx, hotSet, "/polled").Result(); err != nil || got != newer {
		t.Errorf("/polled's score = %v (%v), want the newer mark %v kept", got, err, newer)
	}
	if _, err := rdb.ZScore(ctx, hotSet, "/new").Result(); err != nil {
		t.Errorf("/new is not in the hot set: %v", err)
	}
}

// TestAShareOfHotKeysEndsWithinItsBound: when Redis answers every batch of one MarkHot call (a
// tracker's share of its hot keys), but slowly, the call stops at the share's bound
// (Store.shareMax: markHotMax in production, 1 s here) instead of sending one slow batch after
// another: the batches sent by then are marked, the others are not (the tracker shares a key
// again when it is asked for again, as a polled key is).
func TestAShareOfHotKeysEndsWithinItsBound(t *testing.T) {
	srv := redistest.Start(t)
	rl := startRelay(t, srv.Addr())
	s := newStore(t, clientTo(t, rl.ln.Addr().String()))
	s.shareMax = time.Second
	ctx := t.Context()
	keys := make([]string, 100*markHotBatch)
	for i := range keys {
		keys[i] = fmt.Sprintf("/slow/%d", i)
	}
	// The relay holds each read of Redis's answers for 30 ms: a batch's answers (to a pipeline of
	// 503 commands) come in a read or two, so a batch takes well below the client's read timeout
	// (250 ms, for the whole answer) and its own deadline (4 × L2Timeout), and only the share's
	// bound can stop the call. The 100 batches take about 5 s without it; with it, about 15 are
	// sent, and the call ends at the bound, within 3 s even with the race detector on a loaded
	// machine.
	rl.delay.Store(int64(30 * time.Millisecond))
	start := time.Now()
	err := s.MarkHot(ctx, keys, time.Minute)
	took := time.Since(start)
	rl.delay.Store(0)
	switch {
	case err == nil:
		t.Errorf("MarkHot of 100 slow batches = nil after %v, want stopped at %v", took, s.shareMax)
	case took < s.shareMax-s.shareMax/10:
		t.Errorf("MarkHot of 100 slow batches stopped after %v, before its bound (%v): %v", took, s.shareMax, err)
	case took > 3*time.Second:
		t.Errorf("MarkHot of 100 slow batches took %v, want about its bound (%v)", took, s.shareMax)
	}
	// The batch the bound cut is not a Redis failure: the breaker counts none (and so cannot open,
	// as it would for a call that waited its whole deadline).
	if n := s.br.failures.Load(); n != 0 || !s.br.allow() {
		t.Errorf("after the share stopped at its bound the breaker counts %d failures (open: %v), want none",
			n, !s.br.allow())
	}
	if !s.IsHot(ctx, keys[0]) {
		t.Errorf("%s, of the first batch, is not hot", keys[0])
	}
	if s.IsHot(ctx, keys[len(keys)-1]) {
		t.Errorf("%s, of the last batch, is hot: the call did not stop at its bound", keys[len(keys)-1])
	}
	n, _ := srv.Client().ZCard(ctx, hotSet).Result()
	t.Logf("the call stopped after %v (%v) with %d keys in the hot set", took.Round(time.Millisecond), err, n)
}

// TestTheHotShareBoundLeavesStallsToTheBreaker: a batch the share's bound cuts is not reported
// to the breaker, so the bound must leave a stalled Redis time to fail a batch on its own first.
// With the bound of production (markHotMax) above the client's limits on one call (redisconn's,
// which clientTo copies), a share into a Redis that runs commands but stops answering opens the
// circuit.
func TestTheHotShareBoundLeavesStallsToTheBreaker(t *testing.T) {
	// The longest one batch can take before it fails on its own: a wait for a connection, a
	// dial, a write and a read.
	call := redisconn.PoolTimeout + redisconn.DialTimeout + 2*redisconn.CallTimeout
	if markHotMax < 2*call {
		t.Fatalf("markHotMax (%v) is less than twice the longest a batch takes to fail (%v)", markHotMax, call)
	}
	srv := redistest.Start(t)
	rl := startRelay(t, srv.Addr())
	s := newStore(t, clientTo(t, rl.ln.Addr().String()))
	ctx := t.Context()
	keys := make([]string, 2*markHotBatch)
	for i := range keys {
		keys[i] = fmt.Sprintf("/stalled/%d", i)
	}
	rl.lose.Store(true)
	err := s.MarkHot(ctx, keys, time.Minute)
	if err == nil {
		t.Fatalf("MarkHot into a Redis that does not answer = nil")
	}
	if s.br.allow() {
		t.Errorf("the circuit is closed after a share into a Redis that stopped answering (%v)", err)
	}
}
