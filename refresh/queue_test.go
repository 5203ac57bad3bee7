package refresh

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/tiers"
)

func TestJobsRunInDueOrder(t *testing.T) {
	tests := []struct {
		name string
		due  []time.Duration // of jobs "c", "a", "b", scheduled in that order
		want []time.Duration // when a, b and c run
	}{
		{"due later", []time.Duration{3 * time.Second, 1 * time.Second, 2 * time.Second},
			[]time.Duration{1 * time.Second, 2 * time.Second, 3 * time.Second}},
		{"overdue", []time.Duration{-1 * time.Second, -3 * time.Second, -2 * time.Second},
			[]time.Duration{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newTestPool(1, 10, time.Minute)
				log := newRunLog()
				for i, id := range []string{"c", "a", "b"} {
					if !p.Schedule(Job{ID: id, Due: log.start.Add(tt.due[i]), Run: log.job(id)}) {
						t.Fatalf("Schedule(%s) = false, want true", id)
					}
				}
				start(t, p)
				time.Sleep(4 * time.Second)
				synctest.Wait()
				runs, at := log.get()
				if want := []string{"a", "b", "c"}; !slices.Equal(runs, want) {
					t.Errorf("jobs ran in order %q, want %q", runs, want)
				}
				if !slices.Equal(at, tt.want) {
					t.Errorf("jobs ran at %v, want %v", at, tt.want)
				}
				if got := p.done.Load(); got != 3 {
					t.Errorf("Done = %d, want 3", got)
				}
			})
		})
	}
}

func TestAJobDueLaterDoesNotRunBeforeItsTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(2, 10, time.Minute)
		log := newRunLog()
		start(t, p)
		p.Schedule(Job{ID: "k", Due: log.start.Add(5 * time.Second), Run: log.job("k")})

		time.Sleep(5*time.Second - time.Millisecond)
		synctest.Wait()
		if runs, _ := log.get(); len(runs) != 0 {
			t.Fatalf("job due at 5s ran before 5s: %q", runs)
		}
		if !p.queued("k") || p.Len() != 1 {
			t.Errorf("before its time: queued = %v, Len = %d; want true, 1", p.queued("k"), p.Len())
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		runs, at := log.get()
		if !slices.Equal(runs, []string{"k"}) || at[0] != 5*time.Second {
			t.Errorf("after its time: ran %q at %v, want k at 5s", runs, at)
		}
		if p.queued("k") || p.Len() != 0 {
			t.Errorf("after it ran: queued = %v, Len = %d; want false, 0", p.queued("k"), p.Len())
		}
	})
}

func TestASoonerJobWakesTheDispatcher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(1, 10, time.Minute)
		log := newRunLog()
		start(t, p)
		p.Schedule(Job{ID: "late", Due: log.start.Add(time.Hour), Run: log.job("late")})
		synctest.Wait() // the dispatcher sleeps until "late" is due
		p.Schedule(Job{ID: "soon", Due: log.start.Add(time.Second), Run: log.job("soon")})

		time.Sleep(2 * time.Second)
		synctest.Wait()
		runs, at := log.get()
		if !slices.Equal(runs, []string{"soon"}) || at[0] != time.Second {
			t.Errorf("ran %q at %v, want soon at 1s", runs, at)
		}
	})
}

func TestAtMostOneJobPerIDIsQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(1, 10, time.Minute)
		log := newRunLog()
		at := func(d time.Duration) time.Time { return log.start.Add(d) }

		if !p.Schedule(Job{ID: "k", Due: at(2 * time.Second), Run: log.job("k@2s")}) {
			t.Fatal("first Schedule = false, want true")
		}
		if p.Schedule(Job{ID: "k", Due: at(3 * time.Second), Run: log.job("k@3s")}) {
			t.Error("Schedule of a queued ID due later = true, want false")
		}
		if p.Schedule(Job{ID: "k", Due: at(2 * time.Second), Run: log.job("k@2s again")}) {
			t.Error("Schedule of a queued ID due at the same time = true, want false")
		}
		if got := p.skipped.Load(); got != 2 {
			t.Errorf("Skipped = %d, want 2", got)
		}
		if !p.Schedule(Job{ID: "k", Due: at(1 * time.Second), Run: log.job("k@1s")}) {
			t.Error("Schedule of a queued ID due earlier = false, want true (moved earlier)")
		}
		if got := p.Len(); got != 1 {
			t.Errorf("Len = %d, want 1", got)
		}
		if got := p.skipped.Load(); got != 2 {
			t.Errorf("Skipped after moving the job earlier = %d, want 2", got)
		}

		start(t, p)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		runs, times := log.get()
		if !slices.Equal(runs, []string{"k@1s"}) || times[0] != time.Second {
			t.Errorf("ran %q at %v, want only k@1s, at 1s", runs, times)
		}
	})
}

func TestAJobScheduledWhileItsIDRunsIsDeferred(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(2, 10, time.Minute)
		log := newRunLog()
		at := func(d time.Duration) time.Time { return log.start.Add(d) }
		release := make(chan struct{})
		start(t, p)
		p.Schedule(Job{ID: "k", Due: at(0), Run: func(ctx context.Context) error {
			<-release
			return log.job("first")(ctx)
		}})
		synctest.Wait()
		if !p.queued("k") {
			t.Fatal("queued(k) while it runs = false, want true")
		}

		if p.Schedule(Job{ID: "k", Due: at(0), Run: log.job("due now")}) {
			t.Error("Schedule due now while the ID runs = true, want false (redundant)")
		}
		if !p.Schedule(Job{ID: "k", Due: at(5 * time.Second), Run: log.job("next@5s")}) {
			t.Error("Schedule due later while the ID runs = false, want true (deferred)")
		}
		if p.Schedule(Job{ID: "k", Due: at(6 * time.Second), Run: log.job("next@6s")}) {
			t.Error("Schedule due after the deferred job = true, want false")
		}
		if !p.Schedule(Job{ID: "k", Due: at(4 * time.Second), Run: log.job("next@4s")}) {
			t.Error("Schedule due before the deferred job = false, want true")
		}
		if got := p.skipped.Load(); got != 2 {
			t.Errorf("Skipped = %d, want 2", got)
		}
		if got := p.Len(); got != 0 {
			t.Errorf("Len while the deferred job waits for the running one = %d, want 0", got)
		}

		time.Sleep(2 * time.Second)
		close(release)
		synctest.Wait()
		if runs, _ := log.get(); !slices.Equal(runs, []string{"first"}) {
			t.Errorf("at 2s, after the running job ended: ran %q, want [first]", runs)
		}
		if got := p.Len(); got != 1 {
			t.Errorf("Len after the running job ended = %d, want 1 (the deferred job)", got)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		runs, times := log.get()
		if !slices.Equal(runs, []string{"first", "next@4s"}) || times[1] != 4*time.Second {
			t.Errorf("ran %q at %v, want [first next@4s], the second at 4s", runs, times)
		}
	})
}

func TestAFullQueueKeepsTheSoonestJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(1, 2, time.Minute)
		log := newRunLog()
		schedule := func(d time.Duration) bool {
			id := d.String()
			return p.Schedule(Job{ID: id, Due: log.start.Add(d), Run: log.job(id)})
		}
		for _, d := range []time.Duration{10 * time.Second, 20 * time.Second} {
			if !schedule(d) {
				t.Fatalf("Schedule(+%v) into a queue with room = false, want true", d)
			}
		}
		if !schedule(5 * time.Second) {
			t.Error("Schedule(+5s) into a full queue of later jobs = false, want true")
		}
		if got := p.overflow.Load(); got != 1 {
			t.Errorf("Overflow after dropping the latest job = %d, want 1", got)
		}
		if p.queued("20s") {
			t.Error("the +20s job is still queued, want it dropped")
		}
		if schedule(30 * time.Second) {
			t.Error("Schedule(+30s) into a full queue of sooner jobs = true, want false")
		}
		if got := p.overflow.Load(); got != 2 {
			t.Errorf("Overflow after refusing a later job = %d, want 2", got)
		}
		if got := p.Len(); got != 2 {
			t.Errorf("Len = %d, want 2", got)
		}

		start(t, p)
		time.Sleep(time.Minute)
		synctest.Wait()
		runs, at := log.get()
		if want := []string{"5s", "10s"}; !slices.Equal(runs, want) {
			t.Errorf("ran %q, want %q", runs, want)
		}
		if want := []time.Duration{5 * time.Second, 10 * time.Second}; !slices.Equal(at, want) {
			t.Errorf("ran at %v, want %v", at, want)
		}
	})
}

func TestAFullQueueInBytesKeepsTheSoonestJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(1, 100, time.Minute)
		p.setMaxBytes(64 << 10)
		log := newRunLog()
		schedule := func(d time.Duration, size int64) bool {
			id := d.String()
			return p.Schedule(Job{ID: id, Due: log.start.Add(d), size: size, Run: log.job(id)})
		}
		for i := range 6 { // 6 jobs of ~10 KiB fit in 64 KiB
			if !schedule(time.Duration(i+2)*time.Second, 10<<10) {
				t.Fatalf("Schedule of job %d into a queue with room = false, want true", i)
			}
		}
		if schedule(time.Minute, 10<<10) {
			t.Error("Schedule of a later job into a queue full in bytes = true, want false")
		}
		if !schedule(time.Second, 10<<10) {
			t.Error("Schedule of a sooner job into a queue full in bytes = false, want true (the latest dropped)")
		}
		if p.queued("7s") {
			t.Error("the latest job (+7s) is still queued, want it dropped")
		}
		if schedule(0, 1<<20) {
			t.Error("Schedule of a job larger than the whole queue = true, want false")
		}
		if b := p.Bytes(); b > 64<<10 {
			t.Errorf("queued bytes = %d, want at most 64 KiB", b)
		}
		if got := p.overflow.Load(); got != 3 {
			t.Errorf("Overflow = %d, want 3", got)
		}
		start(t, p)
		time.Sleep(time.Minute)
		synctest.Wait()
		if runs, _ := log.get(); !slices.Equal(runs, []string{"1s", "2s", "3s", "4s", "5s", "6s"}) {
			t.Errorf("ran %q, want the six soonest", runs)
		}
		if b := p.Bytes(); b != 0 {
			t.Errorf("queued bytes after every job ran = %d, want 0", b)
		}
	})
}

// TestQueuedJobWeightCoversItsHeap checks that the weight a queued job counts against the
// queue's bytes is at least what it costs on the heap (request, fields, closure, queue item), so
// that the byte bound is a true bound. For refresh-ahead, the tracker's records count too.
func TestQueuedJobWeightCoversItsHeap(t *testing.T) {
	tests := []struct {
		name  string
		queue func(p *Pool, tr *Tracker, e *tiers.Entry)
	}{
		{"revalidation", func(p *Pool, _ *Tracker, e *tiers.Entry) {
			hdr := http.Header{"Accept": {"application/json"}, "User-Agent": {"poller/1.0 (like every client)"},
				"X-Forwarded-For": {"10.0.0.1"}, "Accept-Encoding": {"gzip"}}
			// As proxy builds it: Value and Field read a copy of every field the client sent, here
			// 8 KiB of them, which a queued job must not keep (newcomer and security review).
			raw := hdr.Clone()
			raw.Set("X-Junk", strings.Repeat("j", 8<<10))
			p.Enqueue(&fill.Request{Key: e.Key, URI: e.Key, Header: hdr, Stale: e,
				Value: func(name string) string { return raw.Get(name) }, Field: func(name string) string { return raw.Get(name) }})
		}},
		{"invalidation refresh", func(p *Pool, _ *Tracker, e *tiers.Entry) { p.Refresh(e, 1) }},
		{"refresh-ahead", func(_ *Pool, tr *Tracker, e *tiers.Entry) {
			tr.TouchAt(e.Key, nil, e, time.Now())
			tr.TouchAt(e.Key, nil, e, time.Now())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 10_000
			s := newTestStore(t, nil)
			p := newPool(&Filler{Store: s}, 1, n, time.Minute, slog.New(slog.DiscardHandler))
			p.setMaxBytes(1 << 30)
			tr := &Tracker{Window: time.Minute, MaxBytes: 1 << 30, Pool: p}
			entries := make([]*tiers.Entry, n)
			for i := range entries {
				entries[i] = &tiers.Entry{Key: "/api/prices?pair=" + strconv.Itoa(i), Vary: []string{"Accept-Encoding"},
					VaryValues: []string{"gzip"}, Stored: time.Now(), Fresh: time.Hour}
			}
			before := heapInUse()
			for _, e := range entries {
				tt.queue(p, tr, e)
			}
			grew := heapInUse() - before
			_, records := tr.Size()
			counted := p.Bytes() + records
			t.Logf("%d jobs: heap grew %d bytes (%d each), counted %d (%d each)", n, grew, grew/n, counted, counted/n)
			if p.Len() != n {
				t.Fatalf("queued %d jobs, want %d", p.Len(), n)
			}
			if grew > counted {
				t.Errorf("queued jobs cost %d bytes of heap, the pool and tracker counted %d", grew, counted)
			}
			runtime.KeepAlive(entries)
			runtime.KeepAlive(tr)
		})
	}
}
