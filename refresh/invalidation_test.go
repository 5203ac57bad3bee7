package refresh

import (
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

func TestAFillAfterForgetMakesItsOwnOriginRequest(t *testing.T) {
	o := newTestOrigin(t, true, cacheable)
	f := newTestFiller(t, newTestStore(t, nil), o)

	var wg sync.WaitGroup
	var first, second *fill.Result
	var err1, err2 error
	wg.Go(func() { first, err1 = f.Fill(t.Context(), request("/a")) })
	testenv.WaitFor(t, 5*time.Second, "the first origin request", func() bool { return o.hits.Load() == 1 })
	f.Forget("/a") // an invalidation landed: what the running fetch brings may be old
	wg.Go(func() { second, err2 = f.Fill(t.Context(), request("/a")) })
	testenv.WaitFor(t, 5*time.Second, "a second origin request after Forget", func() bool { return o.hits.Load() == 2 })
	o.release()
	wg.Wait()

	if err1 != nil || err2 != nil {
		t.Fatalf("Fill errors: %v, %v", err1, err2)
	}
	if string(first.Entry.Body) != "v1" || string(second.Entry.Body) != "v2" {
		t.Errorf("bodies = %q, %q; want v1 for the fill before Forget and v2 for the one after", first.Entry.Body, second.Entry.Body)
	}
	if second.Shared {
		t.Error("the fill after Forget is Shared, want its own")
	}
}

func testAPurgeDuringAFetchIsNotUndone(t *testing.T, topo redistest.Topology) {
	tests := []struct {
		name  string
		redis bool
	}{
		{"l1 only", false},
		{"l1 and redis", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rdb redis.UniversalClient
			if tt.redis {
				rdb = topo.Connect(t)
			}
			o := newTestOrigin(t, true, cacheable)
			s := newTestStore(t, rdb)
			f := newTestFiller(t, s, o)
			ctx := t.Context()

			var wg sync.WaitGroup
			var res *fill.Result
			var err error
			wg.Go(func() { res, err = f.Fill(ctx, request("/a")) })
			testenv.WaitFor(t, 5*time.Second, "the origin request", func() bool { return o.hits.Load() == 1 })
			if err := s.Delete(ctx, "/a"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			o.release()
			wg.Wait()

			if err != nil {
				t.Fatalf("Fill: %v", err)
			}
			if res.Entry == nil || string(res.Entry.Body) != "v1" {
				t.Errorf("Fill = %+v, want the fetched v1 served to its caller", res)
			}
			if res.NotStored != "invalidated" {
				t.Errorf("NotStored = %q, want invalidated", res.NotStored)
			}
			if got := f.stats.Stored.Load(); got != 0 {
				t.Errorf("Stats.Stored = %d, want 0", got)
			}
			obj, err := s.GetL2(ctx, "/a") // L2, or L1 without Redis
			if err != nil {
				t.Fatalf("GetL2: %v", err)
			}
			if obj != nil && len(obj.Variants) > 0 {
				t.Fatalf("store holds %d variants after the purge, want none", len(obj.Variants))
			}
			if variant(s, "/a") != nil {
				t.Errorf("L1 holds a variant after the purge, want none")
			}

			// A fill that begins after the purge, under the new generation, is stored.
			obj, _, err = s.Get(ctx, "/a")
			if err != nil || obj == nil {
				t.Fatalf("Get after purge = %v, %v; want the generation-only object", obj, err)
			}
			r := request("/a")
			r.Gen = obj.Gen
			res, err = f.Fill(ctx, r)
			if err != nil || res.NotStored != "" || res.Entry == nil || string(res.Entry.Body) != "v2" {
				t.Fatalf("Fill after purge = %+v, %v; want v2 stored", res, err)
			}
			if variant(s, "/a") == nil {
				t.Errorf("the fill after the purge was not stored")
			}
		})
	}
}
