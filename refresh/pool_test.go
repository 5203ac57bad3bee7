package refresh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/tiers"
)

// newTestPool returns a pool without a filler, for jobs that bring their own Run.
func newTestPool(workers, queue int, timeout time.Duration) *Pool {
	return NewPool(nil, workers, queue, timeout, slog.New(slog.DiscardHandler))
}

// start runs p in the bubble until the test ends: its Cleanup cancels Run and waits for it.
func start(t *testing.T, p *Pool) {
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// runLog records which jobs ran, and when (fake time since the bubble started).
type runLog struct {
	start time.Time
	mu    sync.Mutex
	runs  []string
	at    []time.Duration
}

func newRunLog() *runLog { return &runLog{start: time.Now()} }

// job returns a Run func that records id.
func (l *runLog) job(id string) func(context.Context) error {
	return func(context.Context) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.runs = append(l.runs, id)
		l.at = append(l.at, time.Since(l.start))
		return nil
	}
}

func (l *runLog) get() ([]string, []time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.runs), slices.Clone(l.at)
}

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
				if got := p.Done.Load(); got != 3 {
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
		if !p.Queued("k") || p.Len() != 1 {
			t.Errorf("before its time: Queued = %v, Len = %d; want true, 1", p.Queued("k"), p.Len())
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		runs, at := log.get()
		if !slices.Equal(runs, []string{"k"}) || at[0] != 5*time.Second {
			t.Errorf("after its time: ran %q at %v, want k at 5s", runs, at)
		}
		if p.Queued("k") || p.Len() != 0 {
			t.Errorf("after it ran: Queued = %v, Len = %d; want false, 0", p.Queued("k"), p.Len())
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
		if got := p.Skipped.Load(); got != 2 {
			t.Errorf("Skipped = %d, want 2", got)
		}
		if !p.Schedule(Job{ID: "k", Due: at(1 * time.Second), Run: log.job("k@1s")}) {
			t.Error("Schedule of a queued ID due earlier = false, want true (moved earlier)")
		}
		if got := p.Len(); got != 1 {
			t.Errorf("Len = %d, want 1", got)
		}
		if got := p.Skipped.Load(); got != 2 {
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
		if !p.Queued("k") {
			t.Fatal("Queued(k) while it runs = false, want true")
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
		if got := p.Skipped.Load(); got != 2 {
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
		if got := p.Overflow.Load(); got != 1 {
			t.Errorf("Overflow after dropping the latest job = %d, want 1", got)
		}
		if p.Queued("20s") {
			t.Error("the +20s job is still queued, want it dropped")
		}
		if schedule(30 * time.Second) {
			t.Error("Schedule(+30s) into a full queue of sooner jobs = true, want false")
		}
		if got := p.Overflow.Load(); got != 2 {
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

func TestConcurrencyIsBoundedByTheWorkerCount(t *testing.T) {
	tests := []struct {
		workers, jobs int
	}{
		{1, 5},
		{3, 10},
		{8, 8},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d workers, %d jobs", tt.workers, tt.jobs), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newTestPool(tt.workers, tt.jobs, time.Minute)
				var mu sync.Mutex
				running, most := 0, 0
				release := make(chan struct{})
				for i := range tt.jobs {
					p.Schedule(Job{ID: string(rune('a' + i)), Due: time.Now(), Run: func(context.Context) error {
						mu.Lock()
						running++
						most = max(most, running)
						mu.Unlock()
						<-release
						mu.Lock()
						running--
						mu.Unlock()
						return nil
					}})
				}
				start(t, p)
				synctest.Wait()
				mu.Lock()
				if running != tt.workers {
					t.Errorf("%d jobs running with %d workers and %d due, want %d", running, tt.workers, tt.jobs, tt.workers)
				}
				mu.Unlock()
				close(release)
				synctest.Wait()
				if got := p.Done.Load(); got != int64(tt.jobs) {
					t.Errorf("Done = %d, want %d", got, tt.jobs)
				}
				mu.Lock()
				defer mu.Unlock()
				if most != tt.workers {
					t.Errorf("at most %d jobs ran at once, want %d", most, tt.workers)
				}
			})
		})
	}
}

func TestAFailingJobDoesNotStopThePool(t *testing.T) {
	tests := []struct {
		name string
		run  func(context.Context) error
	}{
		{"panic", func(context.Context) error { panic("boom") }},
		{"nil pointer", func(ctx context.Context) error { var j *Job; return j.Run(ctx) }},
		{"error", func(context.Context) error { return errors.New("origin down") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newTestPool(1, 10, time.Minute)
				log := newRunLog()
				start(t, p)
				p.Schedule(Job{ID: "bad", Due: time.Now(), Run: tt.run})
				p.Schedule(Job{ID: "good", Due: time.Now().Add(time.Second), Run: log.job("good")})
				time.Sleep(2 * time.Second)
				synctest.Wait()
				if got := p.Failed.Load(); got != 1 {
					t.Errorf("Failed = %d, want 1", got)
				}
				if runs, _ := log.get(); !slices.Equal(runs, []string{"good"}) {
					t.Errorf("after the failing job ran %q, want [good]", runs)
				}
				if got := p.Done.Load(); got != 1 {
					t.Errorf("Done = %d, want 1", got)
				}
				if p.Queued("bad") {
					t.Error("the failed job's ID is still running")
				}
				// The ID is free again.
				if !p.Schedule(Job{ID: "bad", Due: time.Now(), Run: log.job("bad again")}) {
					t.Error("Schedule of the failed job's ID = false, want true")
				}
			})
		})
	}
}

func TestAJobRunsUnderThePoolTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 2 * time.Second
		p := newTestPool(1, 10, timeout)
		start(t, p)
		var (
			mu      sync.Mutex
			got     error
			elapsed time.Duration
		)
		begin := time.Now()
		p.Schedule(Job{ID: "slow", Due: begin, Run: func(ctx context.Context) error {
			<-ctx.Done() // an origin that never answers
			mu.Lock()
			defer mu.Unlock()
			got, elapsed = ctx.Err(), time.Since(begin)
			return ctx.Err()
		}})
		time.Sleep(time.Minute)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if !errors.Is(got, context.DeadlineExceeded) {
			t.Errorf("job's ctx.Err() = %v, want %v", got, context.DeadlineExceeded)
		}
		if elapsed != timeout {
			t.Errorf("job's ctx was done after %v, want %v", elapsed, timeout)
		}
		if got := p.Failed.Load(); got != 1 {
			t.Errorf("Failed = %d, want 1", got)
		}
	})
}

func TestRunReturnsAfterCancelOnceRunningJobsReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(2, 10, time.Hour)
		log := newRunLog()
		release := make(chan struct{})
		var politeErr atomic.Value
		p.Schedule(Job{ID: "stubborn", Due: time.Now(), Run: func(context.Context) error {
			<-release // ignores its context
			return nil
		}})
		p.Schedule(Job{ID: "polite", Due: time.Now(), Run: func(ctx context.Context) error {
			<-ctx.Done()
			politeErr.Store(ctx.Err())
			return ctx.Err()
		}})
		p.Schedule(Job{ID: "later", Due: time.Now().Add(time.Minute), Run: log.job("later")})

		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		defer wg.Wait()
		var once sync.Once
		stop := func() { once.Do(func() { close(release) }) }
		defer stop()
		defer cancel()
		var returned atomic.Bool
		var err error
		wg.Go(func() {
			err = p.Run(ctx)
			returned.Store(true)
		})
		synctest.Wait()

		cancel()
		synctest.Wait()
		if got, _ := politeErr.Load().(error); !errors.Is(got, context.Canceled) {
			t.Errorf("running job's ctx.Err() after cancel = %v, want %v", got, context.Canceled)
		}
		if returned.Load() {
			t.Fatal("Run returned while a job was still running")
		}
		stop()
		synctest.Wait()
		if !returned.Load() {
			t.Fatal("Run did not return after cancel and the last job ended")
		}
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		time.Sleep(2 * time.Minute)
		if runs, _ := log.get(); len(runs) != 0 {
			t.Errorf("jobs ran after Run returned: %q", runs)
		}
	})
}

// fillFunc adapts a function to the pool's filler; it stands in for the origin trip.
type fillFunc func(ctx context.Context, r *tiers.Request) (*tiers.Result, error)

func (f fillFunc) Fill(ctx context.Context, r *tiers.Request) (*tiers.Result, error) {
	return f(ctx, r)
}

// closeBody is a Pass body that records whether it was closed.
type closeBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *closeBody) Close() error { b.closed.Store(true); return nil }

func TestEnqueueFillsTheRequestAndReleasesItsResult(t *testing.T) {
	tests := []struct {
		name       string
		pass       bool  // the fill returns a Pass rather than an Entry
		foreign    bool  // the Pass was fetched for another request of the flight, which streams it
		err        error // the fill's error
		wantClosed bool
		wantFailed int64
	}{
		{name: "own pass is closed", pass: true, wantClosed: true},
		{name: "another request's pass is left open", pass: true, foreign: true},
		{name: "entry"},
		{name: "error", err: errors.New("origin down"), wantFailed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				body := &closeBody{Reader: strings.NewReader("body")}
				other := &tiers.Request{Key: "/a", URI: "/a"}
				var mu sync.Mutex
				var got []*tiers.Request
				var pass *tiers.Pass
				var deadline bool
				p := NewPool(fillFunc(func(ctx context.Context, r *tiers.Request) (*tiers.Result, error) {
					mu.Lock()
					defer mu.Unlock()
					got = append(got, r)
					_, deadline = ctx.Deadline()
					switch {
					case tt.err != nil:
						return nil, tt.err
					case tt.pass:
						owner := r
						if tt.foreign {
							owner = other
						}
						pass = tiers.NewPass(owner)
						pass.Status, pass.Body, pass.Length = 200, body, -1
						return &tiers.Result{Pass: pass, NotStored: "no-store"}, nil
					}
					return &tiers.Result{Entry: &tiers.Entry{Key: r.Key}}, nil
				}), 1, 10, time.Minute, slog.New(slog.DiscardHandler))

				r := &tiers.Request{Key: "/a", URI: "/a"}
				if !p.Enqueue(r) {
					t.Fatal("Enqueue = false, want true")
				}
				if p.Enqueue(&tiers.Request{Key: "/a", URI: "/a"}) {
					t.Error("second Enqueue of a queued key = true, want false")
				}
				start(t, p)
				synctest.Wait()

				mu.Lock()
				defer mu.Unlock()
				if len(got) != 1 || got[0] != r {
					t.Fatalf("Fill called with %v, want once with the enqueued request", got)
				}
				if !deadline {
					t.Error("Fill ran without a deadline, want the pool's timeout")
				}
				if got := body.closed.Load(); got != tt.wantClosed {
					t.Errorf("Pass body closed = %v, want %v", got, tt.wantClosed)
				}
				if tt.pass && pass.Claim(r) {
					t.Error("the enqueued request can still claim the Pass after the pool ran")
				}
				if tt.foreign && !pass.Claim(other) {
					t.Error("the request the Pass was fetched for can no longer claim it")
				}
				if got := p.Failed.Load(); got != tt.wantFailed {
					t.Errorf("Failed = %d, want %d", got, tt.wantFailed)
				}
			})
		})
	}
}

func TestEnqueueQueuesOneRevalidationPerVariant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []string
		p := NewPool(fillFunc(func(_ context.Context, r *tiers.Request) (*tiers.Result, error) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, r.Stale.VaryValues[0])
			return &tiers.Result{Entry: r.Stale}, nil
		}), 1, 10, time.Minute, slog.New(slog.DiscardHandler))
		stale := func(enc string) *tiers.Request {
			e := &tiers.Entry{Key: "/a", Vary: []string{"Accept-Encoding"}, VaryValues: []string{enc}}
			return &tiers.Request{Key: "/a", URI: "/a", Stale: e}
		}
		if !p.Enqueue(stale("gzip")) || !p.Enqueue(stale("br")) {
			t.Error("Enqueue of two variants of one key refused one, want both queued")
		}
		if p.Enqueue(stale("gzip")) {
			t.Error("second Enqueue of a queued variant = true, want false")
		}
		start(t, p)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		slices.Sort(got)
		if want := []string{"br", "gzip"}; !slices.Equal(got, want) {
			t.Errorf("revalidated variants %q, want %q", got, want)
		}
	})
}

func TestRefreshFillsTheEntryUnderItsGeneration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []*tiers.Request
		p := NewPool(fillFunc(func(_ context.Context, r *tiers.Request) (*tiers.Result, error) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, r)
			return &tiers.Result{Entry: r.Stale}, nil
		}), 1, 10, time.Minute, slog.New(slog.DiscardHandler))
		e := &tiers.Entry{Key: httpcache.Key("example.com", "/a?b=1"), ETag: `"v1"`, Vary: []string{"Accept-Encoding"}, VaryValues: []string{"gzip"}}

		if !p.Enqueue(&tiers.Request{Key: e.Key, URI: "/a?b=1"}) {
			t.Fatal("Enqueue = false, want true")
		}
		if !p.Refresh(e, 7) {
			t.Error("Refresh of a key with a queued revalidation = false, want true (another job ID)")
		}
		if p.Refresh(e, 7) {
			t.Error("second Refresh of the same variant = true, want false")
		}
		start(t, p)
		synctest.Wait()

		mu.Lock()
		defer mu.Unlock()
		if len(got) != 2 {
			t.Fatalf("Fill called %d times, want 2", len(got))
		}
		r := got[0]
		if r.Stale == nil {
			r = got[1]
		}
		if r.Stale != e || r.Gen != 7 || r.URI != "/a?b=1" || r.Key != e.Key {
			t.Errorf("Refresh filled %+v, want the entry's key and target with Stale = e, Gen = 7", r)
		}
		if v := r.Value("Accept-Encoding"); v != "gzip" {
			t.Errorf("refresh request's Accept-Encoding value = %q, want gzip", v)
		}
		if h := r.Header.Get("X-Forwarded-Host"); h != "example.com" {
			t.Errorf("refresh request's X-Forwarded-Host = %q, want example.com", h)
		}
	})
}

func TestAFullQueueInBytesKeepsTheSoonestJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(1, 100, time.Minute)
		p.SetMaxBytes(64 << 10)
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
		if p.Queued("7s") {
			t.Error("the latest job (+7s) is still queued, want it dropped")
		}
		if schedule(0, 1<<20) {
			t.Error("Schedule of a job larger than the whole queue = true, want false")
		}
		if b := p.Bytes(); b > 64<<10 {
			t.Errorf("queued bytes = %d, want at most 64 KiB", b)
		}
		if got := p.Overflow.Load(); got != 3 {
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
			p.Enqueue(&tiers.Request{Key: e.Key, URI: e.Key, Header: hdr, Stale: e,
				Value: func(name string) string { return raw.Get(name) }, Field: func(name string) string { return raw.Get(name) }})
		}},
		{"invalidation refresh", func(p *Pool, _ *Tracker, e *tiers.Entry) { p.Refresh(e, 1) }},
		{"refresh-ahead", func(_ *Pool, tr *Tracker, e *tiers.Entry) {
			tr.Touch(e.Key, e)
			tr.Touch(e.Key, e)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 10_000
			s := newTestStore(t, nil)
			p := NewPool(&Filler{Store: s}, 1, n, time.Minute, slog.New(slog.DiscardHandler))
			p.SetMaxBytes(1 << 30)
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

// TestQueuedJobsDoNotKeepTheirEntryAlive is issue 7 point 6: jobs hold the key, not the entry, so
// once L1 drops an entry nothing keeps its body in memory while its job waits; the job then finds
// nothing to do. Before, 400 queued refresh-ahead jobs of 256 KiB entries kept 163 MB resident.
func TestQueuedJobsDoNotKeepTheirEntryAlive(t *testing.T) {
	tests := []struct {
		name  string
		queue func(p *Pool, tr *Tracker, e *tiers.Entry)
	}{
		{"revalidation", func(p *Pool, _ *Tracker, e *tiers.Entry) {
			p.Enqueue(&tiers.Request{Key: e.Key, URI: e.Key, Header: http.Header{}, Stale: e, Value: func(string) string { return "" }})
		}},
		{"invalidation refresh", func(p *Pool, _ *Tracker, e *tiers.Entry) { p.Refresh(e, 1) }},
		{"refresh-ahead", func(_ *Pool, tr *Tracker, e *tiers.Entry) {
			tr.Touch(e.Key, e)
			tr.Touch(e.Key, e) // asked for again: its refresh is scheduled
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newTestOrigin(t, false, cacheable)
			s := newTestStore(t, nil)
			f := newTestFiller(t, s, o)
			p := NewPool(f, 1, 100, 5*time.Second, slog.New(slog.DiscardHandler))
			tr := &Tracker{Window: time.Minute, Pool: p, Filler: f, Store: s, Log: slog.New(slog.DiscardHandler)}
			weakEntry := func() weak.Pointer[tiers.Entry] {
				e := &tiers.Entry{Key: "/big", Status: 200, Body: make([]byte, 8<<20), ETag: `"v0"`, OriginETag: true,
					Stored: time.Now(), Fresh: time.Minute, StaleWhileRevalidate: time.Minute}
				if err := s.Set(context.Background(), e); err != nil {
					t.Fatal(err)
				}
				tt.queue(p, tr, e)
				if p.Len() != 1 {
					t.Fatalf("queued jobs = %d, want 1", p.Len())
				}
				s.Forget(e.Key) // L1 drops it (evicted, or invalidated on another instance)
				return weak.Make(e)
			}()
			runtime.GC()
			runtime.GC()
			if weakEntry.Value() != nil {
				t.Fatalf("the %s job queued for an 8 MiB entry keeps it alive after L1 dropped it", tt.name)
			}
			// Make the job due before the workers start: a revalidation is due already, and a
			// worker that took it first would leave nothing queued to change.
			p.mu.Lock()
			p.soon.items[0].job.Due = time.Now() // run the refresh-ahead now
			p.mu.Unlock()
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { p.Run(ctx) })
			defer func() { cancel(); wg.Wait() }()
			testenv.WaitFor(t, 5*time.Second, "the job to run", func() bool { return p.Done.Load()+p.Failed.Load() == 1 })
			if n := o.hits.Load(); n != 0 {
				t.Errorf("origin requests = %d, want 0: the entry is gone, there is nothing to revalidate", n)
			}
		})
	}
}

// TestAQueuedRevalidationLooksItsEntryUpWhenItRuns: a revalidation queued for a stale copy does
// nothing if the copy was renewed before it ran, and otherwise revalidates the copy stored then.
func TestAQueuedRevalidationLooksItsEntryUpWhenItRuns(t *testing.T) {
	o, validators := revalidatingOrigin(t, "max-age=60")
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)
	p := NewPool(f, 1, 100, 5*time.Second, slog.New(slog.DiscardHandler))
	revalidate := func(e *tiers.Entry) *tiers.Request {
		return &tiers.Request{Key: e.Key, URI: e.Key, Header: http.Header{}, Stale: e, Value: func(string) string { return "" }}
	}
	set := func(e *tiers.Entry) {
		if err := s.Set(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}

	renewedMeanwhile := staleEntry("/renewed")
	set(renewedMeanwhile)
	p.Enqueue(revalidate(renewedMeanwhile))
	fresh := *renewedMeanwhile
	fresh.Stored = time.Now()
	set(&fresh)

	older := staleEntry("/older")
	older.ETag, older.Stored = `"v0"`, older.Stored.Add(-time.Minute)
	set(older)
	p.Enqueue(revalidate(older))
	set(staleEntry("/older")) // a newer copy, still stale: ETag "v1"

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	testenv.WaitFor(t, 5*time.Second, "both revalidations to run", func() bool { return p.Done.Load()+p.Failed.Load() == 2 })
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin requests = %d, want 1 (none for the copy renewed before its job ran)", n)
	}
	if inm, _ := validators(); inm != `"v1"` {
		t.Errorf("revalidation sent If-None-Match %q, want the copy stored when it ran (%q)", inm, `"v1"`)
	}
}
