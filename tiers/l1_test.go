package tiers

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

func TestL1IsBoundedByBytes(t *testing.T) {
	s := newStoreWith(t, Options{L1MaxBytes: 1 << 20, L1MaxTTL: time.Hour})
	body := strings.Repeat("x", 100<<10)
	for i := range 50 {
		e := testEntry("/big/"+strconv.Itoa(i), body)
		e.ETag = `"big"`
		if err := s.Set(t.Context(), e); err != nil {
			t.Fatalf("Set(%d): %v", i, err)
		}
	}
	var objects int
	var weight uint64
	testenv.WaitFor(t, 3*time.Second, "L1 to evict down to its byte bound", func() bool { // otter evicts asynchronously
		objects, weight = s.L1Stats()
		return weight <= 1<<20 && objects <= 10
	})
	if objects < 1 || weight < 100<<10 {
		t.Errorf("L1Stats = %d objects, %d bytes; want 1 to 10 objects of 100 KiB", objects, weight)
	}
}

// TestWithoutL2AnL1CopyLivesItsWholeLifetime: L1MaxTTL bounds how long L1 trusts a copy before it
// reads L2 again; without L2 a copy fresh for an hour stays in L1 for that hour (it used to be
// dropped after SWR_L1_MAX_TTL, 30 s, and fetched from the origin again).
func TestWithoutL2AnL1CopyLivesItsWholeLifetime(t *testing.T) {
	s := newStoreWith(t, Options{L1MaxBytes: 1 << 20, L1MaxTTL: 200 * time.Millisecond})
	e := testEntry("/t", "fresh for an hour")
	if err := s.Set(t.Context(), e); err != nil {
		t.Fatalf("Set: %v", err)
	}
	got, ok := s.l1.GetEntryQuietly("/t")
	if !ok {
		t.Fatal("the copy is not in L1")
	}
	if want := time.Until(e.Expires()) - time.Minute; got.ExpiresAfter() < want {
		t.Errorf("the L1 copy expires after %v, want its lifetime, about %v", got.ExpiresAfter(), time.Until(e.Expires()))
	}
}

func testL1CopyExpiresAfterL1MaxTTL(t *testing.T, srv redistest.Topology) {
	s := newStoreWith(t, Options{L1MaxBytes: 1 << 20, L1MaxTTL: 200 * time.Millisecond, Redis: srv.Connect(t)})
	e := testEntry("/t", "fresh for an hour")
	if err := s.Set(t.Context(), e); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, tier, _ := s.Get(t.Context(), "/t"); tier != L1 {
		t.Fatalf("Get right after Set: tier %v, want l1", tier)
	}
	start := time.Now()
	testenv.WaitFor(t, 3*time.Second, "the L1 copy to expire", func() bool { return s.Peek("/t") == nil })
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("L1 copy dropped after %v, want about 200ms", d)
	}
	o, tier, err := s.Get(t.Context(), "/t")
	if tier != L2 || err != nil || entryDiff(only(o), e) != "" {
		t.Errorf("Get after L1MaxTTL = %+v, %v, %v; want the entry from l2", o, tier, err)
	}
}

// An object promoted from L2 whose variants have all expired must not stay in L1: otter keeps an
// entry forever when its expiry calculator returns a non-positive duration.
func testExpiredL2ObjectIsNotKeptInL1(t *testing.T, srv redistest.Topology) {
	a := newStore(t, srv.Connect(t))
	b := newStoreWith(t, Options{L1MaxBytes: 1 << 20, L1MaxTTL: 200 * time.Millisecond, Redis: srv.Connect(t)})
	ctx := t.Context()

	if err := a.Set(ctx, testEntry("/x", "v1")); err != nil { // the hash now lives for hours...
		t.Fatalf("Set v1: %v", err)
	}
	short := testEntry("/x", "v2") // ...and keeps doing so when a short-lived version replaces v1
	short.Fresh, short.StaleWhileRevalidate, short.StaleIfError = 300*time.Millisecond, 0, 0
	if err := a.Set(ctx, short); err != nil {
		t.Fatalf("Set v2: %v", err)
	}
	testenv.WaitFor(t, 2*time.Second, "the short entry to expire", func() bool { return time.Now().After(short.Expires()) })
	o, tier, err := b.Get(ctx, "/x")
	if e := only(o); tier != L2 || err != nil || e == nil || string(e.Body) != "v2" {
		t.Fatalf("b.Get = %+v, %v, %v; want the expired v2 from l2", o, tier, err)
	}

	v3 := testEntry("/x", "v3")
	if err := a.Set(ctx, v3); err != nil {
		t.Fatalf("Set v3: %v", err)
	}
	testenv.WaitFor(t, 3*time.Second, "the other instance to read the new L2 entry", func() bool {
		o, _, _ := b.Get(ctx, "/x")
		e := only(o)
		return e != nil && string(e.Body) == "v3"
	})
}

func testReloadReplacesTheL1Copy(t *testing.T, srv redistest.Topology) {
	a, b := newStore(t, srv.Connect(t)), newStore(t, srv.Connect(t))
	ctx := t.Context()
	if err := a.Set(ctx, testEntry("/r", "v1")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	b.Get(ctx, "/r")
	v2 := testEntry("/r", "v2")
	if err := a.Set(ctx, v2); err != nil {
		t.Fatalf("Set v2: %v", err)
	}
	if o, _ := b.GetL2(ctx, "/r"); entryDiff(only(o), v2) != "" {
		t.Errorf("b.GetL2 = %+v, want v2", o)
	}
	if e := only(b.Peek("/r")); e == nil || string(e.Body) != "v1" {
		t.Errorf("b.Peek after GetL2 = %+v, want v1 still: GetL2 must not touch l1", e)
	}
	o, err := b.Reload(ctx, "/r")
	if err != nil || entryDiff(only(o), v2) != "" || b.Peek("/r") != o {
		t.Errorf("b.Reload = %+v, %v; want v2, now in l1", o, err)
	}
	srv.Connect(t).Del(ctx, redisKey("/r"))
	if o, err := b.Reload(ctx, "/r"); o != nil || err != nil || b.Peek("/r") != nil {
		t.Errorf("b.Reload of a key gone from L2 = %+v, %v; want nil, and l1 dropped", o, err)
	}
}

func BenchmarkStorePeek(b *testing.B) {
	s := newStore(b, nil)
	if err := s.Set(b.Context(), testEntry("/api/prices?pair=ALGO-USD", "body")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if s.Peek("/api/prices?pair=ALGO-USD") == nil {
			b.Fatal("miss")
		}
	}
}
