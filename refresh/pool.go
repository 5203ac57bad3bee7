package refresh

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// Job is one background fetch: a stale revalidation (due now), a refresh-ahead (due shortly
// before a hot key goes stale) or a refresh ordered by an invalidation.
type Job struct {
	ID  string    // at most one job per ID is queued or running (a key, or a key and variant)
	Due time.Time // when to run it
	// Run does the work under a context bounded by the pool's timeout; an error is logged.
	Run func(ctx context.Context) error
	// Dropped, when set, is told that the pool dropped the job after accepting it (a full queue
	// keeps sooner jobs). It is called with the pool's lock held: it must not block or call the
	// pool.
	Dropped func()

	// size is what Run holds beyond the Job itself, in bytes (see weight).
	size int64
}

// jobOverhead is the weight of a queued job besides its ID and what Run holds: the Job, its
// queue item, the map entry and the closure (measured with TestQueuedJobWeightCoversItsHeap).
const jobOverhead = 256

// weight is what j costs while queued, in bytes.
func (j *Job) weight() int64 { return jobOverhead + int64(len(j.ID)) + j.size }

// filler is what the pool runs jobs with; *Filler implements it (see Filler.background).
type filler interface {
	background(ctx context.Context, r *fill.Request) (*tiers.Entry, error)
}

// Pool runs background fetches on a fixed number of workers. Its queue is bounded in jobs and
// in bytes and ordered by due time: when it is full, the soonest-due jobs are kept and the rest
// is counted as overflow. A key is queued or running at most once. Enqueue never blocks.
// Safe for concurrent use.
//
// Queued jobs hold keys, not entries: a revalidation or an invalidation's refresh looks its
// entry up in the filler's Store when it runs, so a queue of jobs never keeps alive bodies that
// L1 has evicted.
type Pool struct {
	fill    filler
	store   Store // where jobs look their entries up; nil when fill is not a *Filler
	workers int
	max     int
	timeout time.Duration
	log     *slog.Logger

	mu       sync.Mutex
	maxBytes int64
	bytes    int64   // weight of the queued jobs
	soon     jobHeap // the queue, soonest due first
	late     jobHeap // the same jobs, latest due first: what a full queue drops
	byKey    map[string]*item
	running  map[string]bool
	deferred map[string]Job // future jobs scheduled while their ID was running: at most one per worker
	wake     chan struct{}

	// Counters, read with Load.
	done, failed, overflow, skipped atomic.Int64
}

// defaultJobBytes is the queue's byte bound per job slot unless setMaxBytes says otherwise: about
// the weight of a revalidation carrying a client's fields.
const defaultJobBytes = 4 << 10

// newPool returns a pool of workers with at most queue jobs waiting (and queue×4 KiB of them, see
// setMaxBytes); each job gets timeout. fl serves Enqueue and Refresh; when it is a *Filler,
// jobs look their entries up in its Store when they run. Call Run to start it.
func newPool(fl filler, workers, queue int, timeout time.Duration, log *slog.Logger) *Pool {
	p := &Pool{
		fill:     fl,
		workers:  max(workers, 1),
		max:      max(queue, 1),
		timeout:  timeout,
		log:      log,
		byKey:    map[string]*item{},
		running:  map[string]bool{},
		deferred: map[string]Job{},
		wake:     make(chan struct{}, 1),
		soon:     jobHeap{slot: 0},
		late:     jobHeap{slot: 1},
	}
	p.maxBytes = int64(p.max) * defaultJobBytes
	if f, ok := fl.(*Filler); ok {
		p.store = f.Store
	}
	return p
}

// setMaxBytes bounds the weight of the queued jobs (at least 64 KiB). Call it before Run.
func (p *Pool) setMaxBytes(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxBytes = max(n, 64<<10)
}

// Schedule queues j. It reports false, without blocking, when the key is already queued or
// running, or when the queue is full of sooner jobs (counted as overflow in Stats); the caller keeps
// serving what it has. A key queued with a later due time is moved earlier.
func (p *Pool) Schedule(j Job) bool {
	added, _ := p.schedule(j)
	return added
}

// schedule is Schedule that also reports whether a job with j's ID will run at j.Due or sooner
// (j itself, or one queued or deferred before).
func (p *Pool) schedule(j Job) (added, pending bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := j.ID
	if p.running[key] {
		// A job may schedule its own successor (refresh-ahead); anything due now is redundant.
		d, ok := p.deferred[key]
		if j.Due.After(time.Now()) && (!ok || j.Due.Before(d.Due)) {
			p.deferred[key] = j
			return true, true
		}
		p.skipped.Add(1)
		return false, ok && !d.Due.After(j.Due)
	}
	return p.queueLocked(j)
}

func (p *Pool) queueLocked(j Job) (added, pending bool) {
	key, w := j.ID, j.weight()
	if it, ok := p.byKey[key]; ok {
		if !j.Due.Before(it.job.Due) {
			p.skipped.Add(1)
			return false, true
		}
		p.remove(it) // j replaces it, due sooner (and may weigh more)
	}
	if w > p.maxBytes {
		p.overflow.Add(1)
		return false, false
	}
	for len(p.soon.items) >= p.max || p.bytes+w > p.maxBytes {
		if len(p.late.items) == 0 || !j.Due.Before(p.late.items[0].job.Due) {
			p.overflow.Add(1)
			return false, false
		}
		dropped := p.late.items[0].job
		p.remove(p.late.items[0])
		p.overflow.Add(1)
		if dropped.Dropped != nil {
			dropped.Dropped()
		}
	}
	it := &item{job: j}
	heap.Push(&p.soon, it)
	heap.Push(&p.late, it)
	p.byKey[key] = it
	p.bytes += w
	p.signal()
	return true, true
}

// remove takes it out of the queue. p.mu is held.
func (p *Pool) remove(it *item) {
	heap.Remove(&p.soon, it.index[0])
	heap.Remove(&p.late, it.index[1])
	delete(p.byKey, it.job.ID)
	p.bytes -= it.job.weight()
}

// queued reports whether key is queued or running.
func (p *Pool) queued(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.byKey[key]
	return ok || p.running[key]
}

// Len returns the number of queued jobs.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.soon.items)
}

// Bytes returns the weight of the queued jobs, in bytes.
func (p *Pool) Bytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes
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
	if len(p.soon.items) == 0 {
		return nil, time.Hour
	}
	it := p.soon.items[0]
	if d := it.job.Due.Sub(now); d > 0 {
		return nil, d
	}
	p.remove(it)
	p.running[it.job.ID] = true
	return &it.job, 0
}

func (p *Pool) run(ctx context.Context, j *Job) {
	defer func() {
		p.mu.Lock()
		delete(p.running, j.ID)
		if next, ok := p.deferred[j.ID]; ok {
			delete(p.deferred, j.ID)
			if added, _ := p.queueLocked(next); !added && next.Dropped != nil {
				next.Dropped()
			}
		}
		p.mu.Unlock()
	}()
	// Nobody waits for a refresh: its origin requests yield the budget to clients'.
	jctx, cancel := context.WithTimeout(upstream.Background(ctx), p.timeout)
	defer cancel()
	if err := safeRun(jctx, j.Run); err != nil {
		p.failed.Add(1)
		p.log.Warn("background refresh failed; keeping the stale entry", "key", j.ID, "err", err)
		return
	}
	p.done.Add(1)
}

type item struct {
	job   Job
	index [2]int // in soon, in late
}

// jobHeap is a heap of jobs by due time: soonest first (slot 0) or latest first (slot 1).
type jobHeap struct {
	items []*item
	slot  int
}

func (h *jobHeap) Len() int { return len(h.items) }
func (h *jobHeap) Less(i, j int) bool {
	a, b := h.items[i].job.Due, h.items[j].job.Due
	if h.slot == 1 {
		return a.After(b)
	}
	return a.Before(b)
}
func (h *jobHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index[h.slot] = i
	h.items[j].index[h.slot] = j
}
func (h *jobHeap) Push(x any) {
	it := x.(*item)
	it.index[h.slot] = len(h.items)
	h.items = append(h.items, it)
}
func (h *jobHeap) Pop() any {
	old := h.items
	it := old[len(old)-1]
	old[len(old)-1] = nil
	h.items = old[:len(old)-1]
	return it
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
