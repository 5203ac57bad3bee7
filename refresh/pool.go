package refresh

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swrproxy/swrproxy/tiers"
)

// Job is one background fetch: a stale revalidation (due now), a refresh-ahead (due shortly
// before a hot key goes stale) or a refresh ordered by an invalidation.
type Job struct {
	ID  string    // at most one job per ID is queued or running (a key, or a key and variant)
	Due time.Time // when to run it
	// Run does the work under a context bounded by the pool's timeout; an error is logged.
	Run func(ctx context.Context) error
}

// filler is what the pool runs jobs with; *Filler implements it.
type filler interface {
	Fill(ctx context.Context, r *tiers.Request) (*tiers.Result, error)
}

// Pool runs background fetches on a fixed number of workers. Its queue is bounded and ordered by
// due time: when it is full, the soonest-due jobs are kept and the rest is counted as overflow.
// A key is queued or running at most once. Enqueue never blocks. Safe for concurrent use.
type Pool struct {
	fill    filler
	workers int
	max     int
	timeout time.Duration
	log     *slog.Logger

	mu       sync.Mutex
	queue    jobHeap
	byKey    map[string]*item
	running  map[string]bool
	deferred map[string]Job // future jobs scheduled while their ID was running
	wake     chan struct{}

	// Counters, read with Load.
	Done, Failed, Overflow, Skipped atomic.Int64
}

// NewPool returns a pool of workers with at most queue jobs waiting; each job gets timeout. fill
// serves Enqueue. Call Run to start it.
func NewPool(fill filler, workers, queue int, timeout time.Duration, log *slog.Logger) *Pool {
	return &Pool{
		fill:     fill,
		workers:  max(workers, 1),
		max:      max(queue, 1),
		timeout:  timeout,
		log:      log,
		byKey:    map[string]*item{},
		running:  map[string]bool{},
		deferred: map[string]Job{},
		wake:     make(chan struct{}, 1),
	}
}

// Enqueue schedules a revalidation of r's stale entry, due now. See Schedule.
func (p *Pool) Enqueue(r *tiers.Request) bool {
	id := r.Key
	if r.Stale != nil && len(r.Stale.VaryValues) > 0 {
		id += "\x00" + strings.Join(r.Stale.VaryValues, "\x00") // one revalidation per variant
	}
	return p.Schedule(Job{ID: id, Due: time.Now(), Run: func(ctx context.Context) error {
		return fillDiscard(ctx, p.fill, r)
	}})
}

// Refresh queues a fetch of the variant e under object generation gen, due now: the work of an
// invalidation in mode refresh. It reports false when the queue refused it.
func (p *Pool) Refresh(e *tiers.Entry, gen uint64) bool {
	r := RequestFor(e, gen)
	id := "refresh\x00" + e.Key + "\x00" + strings.Join(e.VaryValues, "\x00")
	return p.Schedule(Job{ID: id, Due: time.Now(), Run: func(ctx context.Context) error {
		return fillDiscard(ctx, p.fill, r)
	}})
}

// fillDiscard runs a background fill of r: nobody streams what it returns, so a Pass it owns is
// closed at once. It returns the fill's error.
func fillDiscard(ctx context.Context, f filler, r *tiers.Request) error {
	res, err := f.Fill(ctx, r)
	if err == nil && res.Pass != nil {
		res.Pass.Release(r)
	}
	return err
}

// Schedule queues j. It reports false, without blocking, when the key is already queued or
// running, or when the queue is full of sooner jobs (counted in Overflow); the caller keeps
// serving what it has. A key queued with a later due time is moved earlier.
func (p *Pool) Schedule(j Job) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := j.ID
	if p.running[key] {
		// A job may schedule its own successor (refresh-ahead); anything due now is redundant.
		if d, ok := p.deferred[key]; j.Due.After(time.Now()) && (!ok || j.Due.Before(d.Due)) {
			p.deferred[key] = j
			return true
		}
		p.Skipped.Add(1)
		return false
	}
	return p.queueLocked(j)
}

func (p *Pool) queueLocked(j Job) bool {
	key := j.ID
	if it, ok := p.byKey[key]; ok {
		if j.Due.Before(it.job.Due) {
			it.job = j
			heap.Fix(&p.queue, it.index)
			p.signal()
			return true
		}
		p.Skipped.Add(1)
		return false
	}
	if len(p.queue) >= p.max {
		last := p.queue.latest()
		if !j.Due.Before(p.queue[last].job.Due) {
			p.Overflow.Add(1)
			return false
		}
		dropped := heap.Remove(&p.queue, last).(*item)
		delete(p.byKey, dropped.job.ID)
		p.Overflow.Add(1)
	}
	it := &item{job: j}
	heap.Push(&p.queue, it)
	p.byKey[key] = it
	p.signal()
	return true
}

// Queued reports whether key is queued or running.
func (p *Pool) Queued(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.byKey[key]
	return ok || p.running[key]
}

// Len returns the number of queued jobs.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

func (p *Pool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run starts the workers and a dispatcher that hands them jobs as they fall due. It blocks until
// ctx is cancelled and every running job has returned, and returns nil.
func (p *Pool) Run(ctx context.Context) error {
	ready := make(chan *Job)
	var wg sync.WaitGroup
	for range p.workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-ready:
					p.run(ctx, j)
				}
			}
		})
	}
	p.dispatch(ctx, ready)
	wg.Wait()
	return nil
}

// dispatch sleeps until the earliest job is due (or a new job arrives), then hands it to a free
// worker. Only one goroutine waits on the wake-up channel, so a wake-up is never lost or bounced.
func (p *Pool) dispatch(ctx context.Context, ready chan<- *Job) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		j, wait := p.next(time.Now())
		if j != nil {
			select {
			case ready <- j:
			case <-ctx.Done():
				return
			}
			continue
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-t.C:
		}
	}
}

// next pops the earliest job if it is due, else says how long until it is.
func (p *Pool) next(now time.Time) (*Job, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return nil, time.Hour
	}
	if d := p.queue[0].job.Due.Sub(now); d > 0 {
		return nil, d
	}
	it := heap.Pop(&p.queue).(*item)
	key := it.job.ID
	delete(p.byKey, key)
	p.running[key] = true
	return &it.job, 0
}

func (p *Pool) run(ctx context.Context, j *Job) {
	defer func() {
		p.mu.Lock()
		delete(p.running, j.ID)
		if next, ok := p.deferred[j.ID]; ok {
			delete(p.deferred, j.ID)
			p.queueLocked(next)
		}
		p.mu.Unlock()
	}()
	jctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := safeRun(jctx, j.Run); err != nil {
		p.Failed.Add(1)
		p.log.Warn("background refresh failed; keeping the stale entry", "key", j.ID, "err", err)
		return
	}
	p.Done.Add(1)
}

type item struct {
	job   Job
	index int
}

// jobHeap is a min-heap of jobs by due time.
type jobHeap []*item

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(i, j int) bool { return h[i].job.Due.Before(h[j].job.Due) }
func (h jobHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *jobHeap) Push(x any) {
	it := x.(*item)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *jobHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

// latest returns the index of the job due last (a leaf of the heap).
func (h jobHeap) latest() int {
	last := len(h) / 2
	for i := len(h) / 2; i < len(h); i++ {
		if h[i].job.Due.After(h[last].job.Due) {
			last = i
		}
	}
	return last
}

// safeRun runs f, turning a panic into an error: one bad job must not take the process down.
func safeRun(ctx context.Context, f func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("refresh: panic in background job: %v", p)
		}
	}()
	return f(ctx)
}
