package tiers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

func testWarmLoadsTheFleetsHotKeysNewestFirstWithinTheBudget(t *testing.T, srv redistest.Topology) {
	ctx := context.Background()
	a, b := newStore(t, srv.Connect(t)), newStore(t, srv.Connect(t))
	for i := range 50 {
		k := fmt.Sprintf("/k%02d", i)
		if err := a.Set(ctx, testEntry(k, "body of "+k)); err != nil {
			t.Fatal(err)
		}
		if err := a.MarkHot(ctx, []string{k}, time.Minute); err != nil { // one at a time: /k49 is the newest (ties sort by key, the same way)
			t.Fatal(err)
		}
	}
	size := int64(a.Peek("/k00").Size())
	keys, bytes, err := b.Warm(ctx, 10*size)
	if err != nil || keys != 10 || bytes != 10*size {
		t.Fatalf("Warm = %d keys, %d bytes, %v; want 10 keys of %d bytes", keys, bytes, err, size)
	}
	for i := range 50 {
		k := fmt.Sprintf("/k%02d", i)
		if got, want := b.Peek(k) != nil, i >= 40; got != want {
			t.Errorf("%s in L1 = %v, want %v (the ten newest)", k, got, want)
		}
	}
	// Keys already in L1 are skipped; the budget counts what is loaded.
	keys, _, err = b.Warm(ctx, 5*size)
	if err != nil || keys != 5 || b.Peek("/k39") == nil || b.Peek("/k34") != nil {
		t.Errorf("second Warm = %d keys, %v; want the next five newest", keys, err)
	}
	if st := b.Stats(); st.WarmKeys != 15 || st.WarmBytes != 15*size {
		t.Errorf("stats %+v, want 15 keys warmed", st)
	}
}

func TestWarmSkipsWhatIsGoneAndNeverNeedsRedis(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a, b := newStore(t, srv.Client()), newStore(t, srv.Client())
	a.Set(ctx, testEntry("/live", "x"))
	a.MarkHot(ctx, []string{"/live", "/never-stored"}, time.Minute)
	a.Delete(ctx, "/live")
	if keys, _, err := b.Warm(ctx, 1<<20); keys != 0 || err != nil || b.Peek("/live") != nil {
		t.Errorf("Warm after a delete: %d keys, %v", keys, err)
	}
	if keys, bytes, err := newStore(t, nil).Warm(ctx, 1<<20); keys != 0 || bytes != 0 || err != nil {
		t.Errorf("Warm without Redis = %d, %d, %v", keys, bytes, err)
	}
	srv.Stop()
	if _, _, err := b.Warm(ctx, 1<<20); err == nil {
		t.Error("Warm with Redis down reported no error")
	}
}

// Many distinct keys asked for leave at most HotSetMax in the hot set.
func testTheHotSetIsBounded(t *testing.T, srv redistest.Topology) {
	ctx := context.Background()
	s := newStore(t, srv.Connect(t))
	keys := make([]string, 0, 1000)
	for i := range HotSetMax + 5000 {
		keys = append(keys, fmt.Sprintf("/many/%d", i))
		if len(keys) == cap(keys) {
			if err := s.MarkHot(ctx, keys, time.Minute); err != nil {
				t.Fatal(err)
			}
			keys = keys[:0]
		}
	}
	if n := srv.Connect(t).ZCard(ctx, hotSet).Val(); n != HotSetMax {
		t.Errorf("hot set holds %d keys, want %d", n, HotSetMax)
	}
}

// BenchmarkWarm measures warming a fresh L1 from a hot set of 2 000 keys of 1 KiB (one op = the
// whole warm-up, on a real redis-server on loopback).
func BenchmarkWarm(b *testing.B) {
	ctx := context.Background()
	srv := redistest.Start(b)
	a := newStore(b, srv.Client())
	body := strings.Repeat("x", 1024)
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = fmt.Sprintf("/bench/%d", i)
		a.Set(ctx, testEntry(keys[i], body))
	}
	a.MarkHot(ctx, keys, time.Hour)
	b.ResetTimer()
	for b.Loop() {
		w := newStore(b, srv.Client())
		if n, _, err := w.Warm(ctx, 1<<30); n != len(keys) || err != nil {
			b.Fatalf("warmed %d, %v", n, err)
		}
	}
}

func TestWarmEndsWithItsDeadlineAgainstAStalledRedisWithoutBlamingIt(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a := newStore(t, srv.Client())
	a.Set(ctx, testEntry("/s", "x"))
	a.MarkHot(ctx, []string{"/s"}, time.Minute)
	s := newStore(t, outageClient(t, srv))
	srv.Freeze()
	defer srv.Thaw()
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	keys, _, err := s.Warm(wctx, 1<<20)
	if keys != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Warm against a stalled Redis = %d keys, %v; want 0 and the deadline", keys, err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Warm with a 100 ms limit took %v", took)
	}
	if s.L2Open() || s.L2Errors() != 0 {
		t.Error("the warm-up's own time limit counted against Redis")
	}
}

func testWarmNeverStoresAKeyInvalidatedAfterItsReadBegan(t *testing.T, srv redistest.Topology) {
	ctx := context.Background()
	a, s := newStore(t, srv.Connect(t)), newStore(t, srv.Connect(t))
	a.Set(ctx, testEntry("/f", "old"))
	o, _ := s.GetL2(ctx, "/f")
	start := time.Now()
	s.Forget("/f") // an invalidation message lands after the warm-up's read began
	s.promote("/f", o, start)
	if s.Peek("/f") != nil {
		t.Error("a copy read before the invalidation was stored")
	}
}

// Large objects are sized before they are read: a budget smaller than a page of them loads what
// fits, reads no page whole, and leaves the circuit closed.
func testWarmSizesLargeObjectsBeforeReadingThem(t *testing.T, srv redistest.Topology) {
	ctx := context.Background()
	a := newStore(t, srv.Connect(t))
	big := strings.Repeat("x", 512<<10)
	var keys []string
	for i := range 40 {
		k := fmt.Sprintf("/big/%d", i)
		a.Set(ctx, testEntry(k, big))
		keys = append(keys, k)
	}
	a.MarkHot(ctx, keys, time.Minute)
	b := newStore(t, srv.Connect(t))
	weight := int64(a.Peek(keys[0]).Size())
	n, bytes, err := b.Warm(ctx, 3*weight)
	if err != nil || n != 3 || bytes > 3*weight {
		t.Errorf("Warm(3 objects' weight) of 40 objects of 512 KiB = %d keys, %d bytes, %v; want 3", n, bytes, err)
	}
	if b.L2Open() || b.L2Errors() != 0 {
		t.Error("the warm-up opened the circuit or counted errors")
	}
}
