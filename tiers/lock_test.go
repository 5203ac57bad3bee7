package tiers

import (
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

func testOnlyOneCallerHoldsTheLock(t *testing.T, srv redistest.Topology) {
	a, b := newStore(t, srv.Connect(t)), newStore(t, srv.Connect(t))
	ctx := t.Context()

	l, ok, err := a.TryLock(ctx, "/k", 5*time.Second)
	if l == nil || !ok || err != nil {
		t.Fatalf("first TryLock = %v, %v, %v; want a held lock", l, ok, err)
	}
	for name, s := range map[string]*Store{"a": a, "b": b} {
		if l2, ok, err := s.TryLock(ctx, "/k", 5*time.Second); l2 != nil || ok || err != nil {
			t.Errorf("%s: second TryLock = %v, %v, %v; want nil, false, nil", name, l2, ok, err)
		}
		if !s.Locked(ctx, "/k") {
			t.Errorf("%s: Locked while held = false", name)
		}
	}
	if b.Locked(ctx, "/other") {
		t.Errorf("Locked(another key) = true")
	}
	l.Unlock()
	l.Unlock() // safe twice
	if a.Locked(ctx, "/k") || b.Locked(ctx, "/k") {
		t.Errorf("Locked after Unlock = true")
	}
	l, ok, err = b.TryLock(ctx, "/k", 5*time.Second)
	if !ok || err != nil {
		t.Fatalf("TryLock after Unlock = %v, %v; want a held lock", ok, err)
	}
	l.Unlock()
}

func testManyCallersRaceForOneLock(t *testing.T, srv redistest.Topology) {
	stores := []*Store{newStore(t, srv.Connect(t)), newStore(t, srv.Connect(t)), newStore(t, srv.Connect(t))}
	var wg sync.WaitGroup
	type result struct {
		l   *Lock
		ok  bool
		err error
	}
	results := make(chan result, 30)
	for i := range cap(results) {
		s := stores[i%len(stores)]
		wg.Go(func() {
			l, ok, err := s.TryLock(t.Context(), "/race", 5*time.Second)
			results <- result{l, ok, err}
		})
	}
	wg.Wait()
	close(results)
	held := 0
	for r := range results {
		if r.err != nil {
			t.Errorf("TryLock error: %v", r.err)
		}
		if r.ok {
			held++
			defer r.l.Unlock()
		}
	}
	if held != 1 {
		t.Errorf("%d of %d racing callers hold the lock, want 1", held, cap(results))
	}
}

func testAHeldLockIsRenewed(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
	s := newStore(t, rdb)
	ctx := t.Context()
	l, ok, err := s.TryLock(ctx, "/slow", 300*time.Millisecond)
	if !ok || err != nil {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	defer l.Unlock()
	lk := redisKey("/slow") + ":lock"
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if !s.Locked(ctx, "/slow") {
			t.Fatalf("lock of a holder still working is gone; PTTL %v", rdb.PTTL(ctx, lk).Val())
		}
	}
	if ttl := rdb.PTTL(ctx, lk).Val(); ttl <= 0 || ttl > 300*time.Millisecond {
		t.Errorf("PTTL after 1s of holding = %v, want (0, 300ms]", ttl)
	}
	l.Unlock()
	if s.Locked(ctx, "/slow") {
		t.Errorf("Locked after Unlock = true")
	}
}

func testALockWhoseHolderDiedExpires(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
	s := newStore(t, rdb)
	ctx := t.Context()
	lk := redisKey("/dead") + ":lock"
	// Another instance took the lock and died: nobody renews it.
	if ok, err := rdb.SetNX(ctx, lk, "someone else", 500*time.Millisecond).Result(); !ok || err != nil {
		t.Fatalf("SETNX %s = %v, %v", lk, ok, err)
	}
	if l, ok, err := s.TryLock(ctx, "/dead", 5*time.Second); ok || err != nil {
		l.Unlock()
		t.Fatalf("TryLock while the dead holder's lock lives = %v, %v; want false, nil", ok, err)
	}
	if !s.Locked(ctx, "/dead") {
		t.Errorf("Locked = false while the dead holder's lock lives")
	}
	var l *Lock
	testenv.WaitFor(t, 3*time.Second, "the dead lock to expire", func() bool {
		var ok bool
		l, ok, _ = s.TryLock(ctx, "/dead", 5*time.Second)
		return ok
	})
	defer l.Unlock()
	if got := rdb.Get(ctx, lk).Val(); got == "someone else" || len(got) != 24 {
		t.Errorf("lock value = %q, want our 24-hex token", got)
	}
}

func testUnlockReleasesOnlyItsOwnLock(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
	s := newStore(t, rdb)
	ctx := t.Context()
	l, ok, err := s.TryLock(ctx, "/mine", 5*time.Second)
	if !ok || err != nil {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	// Our lock expired (a long pause) and another instance took it.
	lk := redisKey("/mine") + ":lock"
	rdb.Set(ctx, lk, "someone else", 5*time.Second)
	l.Unlock()
	if got := rdb.Get(ctx, lk).Val(); got != "someone else" {
		t.Errorf("lock value after our Unlock = %q, want the other holder's lock kept", got)
	}
}

func TestWithoutRedisEveryCallerHoldsTheLock(t *testing.T) {
	s := newStore(t, nil)
	for range 2 {
		l, ok, err := s.TryLock(t.Context(), "/k", time.Second)
		if l != nil || !ok || err != nil {
			t.Errorf("TryLock without Redis = %v, %v, %v; want nil, true, nil", l, ok, err)
		}
		l.Unlock() // safe on nil
	}
	if s.Locked(t.Context(), "/k") {
		t.Errorf("Locked without Redis = true")
	}
	if s.HasL2() || s.L2Open() {
		t.Errorf("HasL2, L2Open without Redis = %v, %v; want false, false", s.HasL2(), s.L2Open())
	}
	var nilLock *Lock
	nilLock.Unlock()
}
