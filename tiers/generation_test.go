package tiers

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

func testDeleteRefusesAFetchThatBeganBefore(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
	a, b := newStore(t, rdb), newStore(t, srv.Connect(t))
	ctx := t.Context()
	if err := a.Set(ctx, testEntry("/p", "old")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, tier, err := b.Get(ctx, "/p"); tier != L2 || err != nil {
		t.Fatalf("b.Get = %v, %v; want an l2 hit", tier, err)
	}
	o, _, _ := a.Get(ctx, "/p")
	began := o.Gen // a refresh begins under this generation...

	if err := a.Delete(ctx, "/p"); err != nil { // ...a purge lands...
		t.Fatalf("Delete: %v", err)
	}
	b.Forget("/p") // the coherence message
	for name, s := range map[string]*Store{"a": a, "b": b} {
		o, _, err := s.Get(ctx, "/p")
		if err != nil || !isMiss(o) {
			t.Errorf("%s.Get after Delete = %+v, %v; want nothing to serve", name, o, err)
		}
		if o != nil && o.Gen <= began {
			t.Errorf("%s.Get after Delete: Gen = %d, want > %d", name, o.Gen, began)
		}
	}

	for name, s := range map[string]*Store{"a": a, "b": b} { // ...and the refresh finishes.
		late := testEntry("/p", "old, refetched")
		late.Gen = began
		if err := s.Set(ctx, late); !errors.Is(err, ErrStale) {
			t.Errorf("%s.Set with the generation before Delete = %v, want ErrStale", name, err)
		}
		if o := s.Peek("/p"); !isMiss(o) {
			t.Errorf("%s.Peek after the refused Set = %+v, want nothing to serve", name, o)
		}
	}
	m, err := rdb.HGetAll(ctx, redisKey("/p")).Result()
	if err != nil || len(m) != 1 || m["g"] != strconv.FormatUint(began+1, 10) {
		t.Errorf("HGETALL after refused Sets = %q, %v; want only the generation %d", m, err, began+1)
	}
	if ttl := rdb.PTTL(ctx, redisKey("/p")).Val(); ttl <= 0 || ttl > 2*time.Minute {
		t.Errorf("tombstone PTTL = %v, want (0, 2m]: it must expire", ttl)
	}

	// A fetch that began after the purge stores normally.
	o, _, _ = a.Get(ctx, "/p")
	fresh := testEntry("/p", "new")
	fresh.Gen = o.Gen
	if err := a.Set(ctx, fresh); err != nil {
		t.Fatalf("Set with the new generation: %v", err)
	}
	b.Forget("/p")
	o, tier, err := b.Get(ctx, "/p")
	if tier != L2 || err != nil || entryDiff(only(o), fresh) != "" {
		t.Errorf("b.Get after the new Set = %+v, %v, %v; want the new entry from l2", o, tier, err)
	}
}

// A fetch may outlive the hash it began under (the entry's lifetime ended meanwhile, or a short
// tombstone expired). The generation it stores must not go back to 0, or the next purge would bump it
// to a value the in-flight generation already has: the purge would not make the entry stale, and a
// fetch that began before it could write the old body back.
func testAGenerationOutlivesItsExpiredHash(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
	// A soft purge keeps the hash a tombstone's lifetime: a short one, so it expires in the test.
	opts := func(rdb redis.UniversalClient) Options {
		return Options{L1MaxBytes: 64 << 20, L1MaxTTL: time.Minute, Redis: rdb, Tombstone: time.Second}
	}
	a, b := newStoreWith(t, opts(rdb)), newStoreWith(t, opts(srv.Connect(t)))
	ctx := t.Context()
	short := testEntry("/g", "v0")
	short.Fresh, short.StaleWhileRevalidate, short.StaleIfError = time.Second, 0, 0
	if err := a.Set(ctx, short); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, err := a.MarkStale(ctx, "/g"); err != nil { // a soft purge: generation 1...
		t.Fatalf("MarkStale: %v", err)
	}
	o, _, err := a.Get(ctx, "/g")
	if err != nil || o == nil {
		t.Fatalf("Get after MarkStale = %+v, %v", o, err)
	}
	began := o.Gen // ...under which a refresh begins;
	testenv.WaitFor(t, 3*time.Second, "the expired hash to leave Redis", func() bool { return rdb.Exists(ctx, redisKey("/g")).Val() == 0 })
	v1 := testEntry("/g", "v1") // it finishes after the hash expired.
	v1.Gen = began
	if err := a.Set(ctx, v1); err != nil {
		t.Fatalf("Set of the refresh: %v", err)
	}
	if o, _, err := b.Get(ctx, "/g"); err != nil || o == nil || o.Gen != began {
		t.Fatalf("b.Get = %+v, %v; want the object at the generation %d its entry was filled under", o, err, began)
	}

	// Another soft purge must make v1 stale everywhere.
	if _, err := a.MarkStale(ctx, "/g"); err != nil {
		t.Fatalf("second MarkStale: %v", err)
	}
	b.Forget("/g")
	if o, _, err := b.Get(ctx, "/g"); err != nil || only(o) == nil || only(o).Gen >= o.Gen {
		t.Errorf("b.Get after the second MarkStale = %+v, %v; want v1 older than its object", o, err)
	}

	// A clear must refuse a fetch that began under v1's generation.
	if err := a.Delete(ctx, "/g"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	late := testEntry("/g", "v1, refetched before the clear")
	late.Gen = began
	if err := a.Set(ctx, late); !errors.Is(err, ErrStale) {
		t.Errorf("Set with a generation from before the clear = %v, want ErrStale", err)
	}
}

func TestDeleteWithoutRedisRefusesAFetchThatBeganBefore(t *testing.T) {
	s := newStore(t, nil)
	ctx := t.Context()
	if err := s.Set(ctx, testEntry("/p", "old")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := s.Delete(ctx, "/p"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if o, _, err := s.Get(ctx, "/p"); !isMiss(o) || err != nil {
		t.Errorf("Get after Delete = %+v, %v; want nothing to serve", o, err)
	}
	if err := s.Set(ctx, testEntry("/p", "old, refetched")); !errors.Is(err, ErrStale) {
		t.Errorf("Set with the generation before Delete = %v, want ErrStale", err)
	}
	e := testEntry("/p", "new")
	e.Gen = 1
	if err := s.Set(ctx, e); err != nil {
		t.Errorf("Set with the new generation = %v", err)
	}
	if got := only(s.Peek("/p")); got != e {
		t.Errorf("Peek = %+v, want the new entry", got)
	}
}

func testMarkStaleKeepsTheEntryButBumpsTheGeneration(t *testing.T, srv redistest.Topology) {
	a, b := newStore(t, srv.Connect(t)), newStore(t, srv.Connect(t))
	ctx := t.Context()
	old := testEntry("/s", "old")
	if err := a.Set(ctx, old); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, tier, err := b.Get(ctx, "/s"); tier != L2 || err != nil {
		t.Fatalf("b.Get = %v, %v; want an l2 hit", tier, err)
	}
	if found, err := a.MarkStale(ctx, "/s"); !found || err != nil {
		t.Fatalf("MarkStale = %v, %v; want true, nil", found, err)
	}
	b.Forget("/s")
	for name, s := range map[string]*Store{"a": a, "b": b} {
		o, _, err := s.Get(ctx, "/s")
		e := only(o)
		if err != nil || e == nil {
			t.Fatalf("%s.Get after MarkStale = %+v, %v; want the entry, still readable", name, o, err)
		}
		if string(e.Body) != "old" || e.Gen != 0 || o.Gen != 1 {
			t.Errorf("%s.Get after MarkStale: body %q, e.Gen %d, o.Gen %d; want old, 0 < 1", name, e.Body, e.Gen, o.Gen)
		}
	}

	late := testEntry("/s", "refetched before the purge") // Gen 0
	if err := a.Set(ctx, late); !errors.Is(err, ErrStale) {
		t.Errorf("Set with the generation before MarkStale = %v, want ErrStale", err)
	}
	fresh := testEntry("/s", "new")
	fresh.Gen = 1
	if err := a.Set(ctx, fresh); err != nil {
		t.Fatalf("Set with the new generation: %v", err)
	}
	b.Forget("/s")
	for name, s := range map[string]*Store{"a": a, "b": b} {
		o, _, err := s.Get(ctx, "/s")
		if e := only(o); err != nil || e == nil || string(e.Body) != "new" || e.Gen != o.Gen {
			t.Errorf("%s.Get after the new Set = %+v, %v; want the new entry at the object's generation", name, o, err)
		}
	}

	if found, err := a.MarkStale(ctx, "/never-stored"); found || err != nil {
		t.Errorf("MarkStale(unknown key) = %v, %v; want false, nil", found, err)
	}
	if n := srv.Connect(t).Exists(ctx, redisKey("/never-stored")).Val(); n != 0 {
		t.Errorf("MarkStale(unknown key) created it in Redis")
	}
}

// A soft purge keeps the key's generation at least a tombstone's lifetime, like a clear: a fetch
// that began before it and stores after the variants' own lifetime ended is still refused
// (security review: the generation expired with the hash and the pre-purge body came back).
func testASoftPurgeKeepsTheGenerationAsLongAsAClear(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
	s := newStoreWith(t, Options{L1MaxBytes: 64 << 20, L1MaxTTL: time.Minute, Redis: rdb, Tombstone: time.Minute})
	ctx := context.Background()
	old := testEntry("/p", "v1")
	old.Fresh, old.StaleWhileRevalidate, old.StaleIfError = 0, 0, 1500*time.Millisecond
	old.Stored = time.Now()
	if err := s.Set(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkStale(ctx, "/p"); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, redisKey("/p")).Val(); ttl < 59*time.Second {
		t.Fatalf("after a soft purge the hash lives %v, want at least the tombstone (1m): its generation would expire with it", ttl)
	}
}
