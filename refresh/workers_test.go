package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// newTestPool returns a pool without a filler, for jobs that bring their own Run.
func newTestPool(workers, queue int, timeout time.Duration) *Pool {
	return newPool(nil, workers, queue, timeout, slog.New(slog.DiscardHandler))
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
				if got := p.done.Load(); got != int64(tt.jobs) {
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
				if got := p.failed.Load(); got != 1 {
					t.Errorf("Failed = %d, want 1", got)
				}
				if runs, _ := log.get(); !slices.Equal(runs, []string{"good"}) {
					t.Errorf("after the failing job ran %q, want [good]", runs)
				}
				if got := p.done.Load(); got != 1 {
					t.Errorf("Done = %d, want 1", got)
				}
				if p.queued("bad") {
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
		if got := p.failed.Load(); got != 1 {
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
