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

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
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

// filler is what the pool runs jobs with; *Filler implements it.
type filler interface {
	Fill(ctx context.Context, r *tiers.Request) (*tiers.Result, error)
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
	store   *tiers.Store // where jobs look their entries up; nil when fill is not a *Filler
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
	Done, Failed, Overflow, Skipped atomic.Int64
}

// defaultJobBytes is the queue's byte bound per job slot unless SetMaxBytes says otherwise: about
// the weight of a revalidation carrying a client's fields.
const defaultJobBytes = 4 << 10

// NewPool returns a pool of workers with at most queue jobs waiting (and queue×4 KiB of them, see
// SetMaxBytes); each job gets timeout. fill serves Enqueue and Refresh; when it is a *Filler,
// jobs look their entries up in its Store when they run. Call Run to start it.
func NewPool(fill filler, workers, queue int, timeout time.Duration, log *slog.Logger) *Pool {
	p := &Pool{
		fill:     fill,
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
	if f, ok := fill.(*Filler); ok {
		p.store = f.Store
	}
	return p
}

// SetMaxBytes bounds the weight of the queued jobs (at least 64 KiB). Call it before Run.
func (p *Pool) SetMaxBytes(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxBytes = max(n, 64<<10)
}

// variantRef names a stored variant without holding it: its key, the vary names and values that
// select it, and when it was stored. A pool whose filler has no Store (tests' fill functions)
// keeps the entry itself instead.
type variantRef struct {
	key          string
	vary, values []string
	stored       time.Time
	entry        *tiers.Entry // only without a store
}

func (p *Pool) refTo(e *tiers.Entry) *variantRef {
	ref := &variantRef{key: e.Key, vary: e.Vary, values: e.VaryValues, stored: e.Stored}
	if p.store == nil {
		ref.entry = e
	}
	return ref
}

// size is what ref holds, in bytes.
func (ref *variantRef) size() int64 {
	n := int64(96 + len(ref.key))
	for i := range ref.vary {
		n += int64(32 + len(ref.vary[i]) + len(ref.values[i]))
	}
	return n
}

// resolve returns the variant ref names as stored now, and its object's generation; nil when it
// is gone (cleared, expired or evicted everywhere): then there is nothing left to revalidate.
func (p *Pool) resolve(ctx context.Context, ref *variantRef) (*tiers.Entry, uint64) {
	if p.store == nil {
		return ref.entry, 0
	}
	o, _, err := p.store.Get(ctx, ref.key)
	if err != nil {
		p.log.Debug("background refresh lookup failed", "key", ref.key, "err", err)
	}
	if o == nil {
		return nil, 0
	}
	return o.Variant(varyValue(ref.vary, ref.values)), o.Gen
}

// renewedSince reports whether e is a copy stored after ref's, fresh and not invalidated under
// gen: another fetch already did what a job for ref would do.
func renewedSince(e *tiers.Entry, ref *variantRef, gen uint64) bool {
	return e.Stored.After(ref.stored) && e.Gen >= gen && e.CurrentAge(time.Now()) < e.Fresh
}

// Enqueue schedules a revalidation of r's stale entry, due now (see Schedule). It takes r over:
// the caller must not use it afterwards. The queued job keeps r's key and fields, not the stale
// entry; when it runs it looks the entry up again, and does nothing if it is gone or was renewed
// meanwhile.
func (p *Pool) Enqueue(r *tiers.Request) bool {
	id := r.Key
	if r.Stale != nil && len(r.Stale.VaryValues) > 0 {
		id += "\x00" + strings.Join(r.Stale.VaryValues, "\x00") // one revalidation per variant
	}
	// Keep only what the revalidation needs: the forwarded fields and the values of the fields
	// the variant varies on. The request's Value and Field read a copy of every field the client
	// sent (up to the 24 KiB header limit, cookies included), which a queued job must not hold.
	var vals map[string]string
	if r.Stale != nil && r.Value != nil {
		vals = make(map[string]string, len(r.Stale.Vary))
		for _, n := range r.Stale.Vary {
			vals[n] = r.Value(n)
		}
	}
	r.Value, r.Field = func(name string) string { return vals[name] }, nil
	var ref *variantRef
	size := requestSize(r) + int64(48+16*len(vals)) // the closure and its map
	for n, v := range vals {
		size += int64(len(n) + len(v) + 32)
	}
	if r.Stale != nil {
		ref = p.refTo(r.Stale)
		size += ref.size()
		r.Stale = nil
	}
	return p.Schedule(Job{ID: id, Due: time.Now(), size: size, Run: func(ctx context.Context) error {
		if ref != nil {
			e, gen := p.resolve(ctx, ref)
			if e == nil || renewedSince(e, ref, max(gen, r.Gen)) {
				return nil
			}
			r.Stale, r.Gen = e, max(r.Gen, gen)
		}
		return fillDiscard(ctx, p.fill, r)
	}})
}

// requestSize is what a queued request holds, in bytes: its target and forwarded fields (Enqueue
// drops what reads the client's other fields).
func requestSize(r *tiers.Request) int64 {
	n := int64(256 + len(r.Key) + len(r.URI))
	for name, vs := range r.Header {
		for _, v := range vs {
			n += int64(len(name) + len(v) + 64) // the strings, the map entry and the value slice
		}
	}
	return n
}

// Refresh queues a fetch of the variant e under object generation gen, due now: the work of an
// invalidation in mode refresh. It reports false when the queue refused it, and for a variant keyed
// on credentials (Vary: Cookie, Authorization): no background request may ask for it again. The
// job keeps e's key and vary values, not e; when it runs it fetches the variant as then stored,
// unless it is gone or was renewed after the invalidation.
func (p *Pool) Refresh(e *tiers.Entry, gen uint64) bool {
	if httpcache.KeyedOnCredentials(e.Vary) {
		return false
	}
	ref := p.refTo(e)
	id := "refresh\x00" + e.Key + "\x00" + strings.Join(e.VaryValues, "\x00")
	return p.Schedule(Job{ID: id, Due: time.Now(), size: ref.size(), Run: func(ctx context.Context) error {
		cur, curGen := p.resolve(ctx, ref)
		if cur == nil || renewedSince(cur, ref, gen) || httpcache.KeyedOnCredentials(cur.Vary) {
			return nil
		}
		return fillDiscard(ctx, p.fill, RequestFor(cur, max(gen, curGen)))
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
		p.Skipped.Add(1)
		return false, ok && !d.Due.After(j.Due)
	}
	return p.queueLocked(j)
}

func (p *Pool) queueLocked(j Job) (added, pending bool) {
	key, w := j.ID, j.weight()
	if it, ok := p.byKey[key]; ok {
		if !j.Due.Before(it.job.Due) {
			p.Skipped.Add(1)
			return false, true
		}
		p.remove(it) // j replaces it, due sooner (and may weigh more)
	}
	if w > p.maxBytes {
		p.Overflow.Add(1)
		return false, false
	}
	for len(p.soon.items) >= p.max || p.bytes+w > p.maxBytes {
		if len(p.late.items) == 0 || !j.Due.Before(p.late.items[0].job.Due) {
			p.Overflow.Add(1)
			return false, false
		}
		dropped := p.late.items[0].job
		p.remove(p.late.items[0])
		p.Overflow.Add(1)
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
