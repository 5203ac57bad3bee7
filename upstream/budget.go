package upstream

import (
	"container/list"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/internal/redisclock"
)

// The origin budget bounds the requests in flight to the origin (fills, refreshes, pass-through):
// SWR_ORIGIN_MAX_CONCURRENCY per instance, SWR_ORIGIN_FLEET_MAX_CONCURRENCY across the fleet, so
// that a mass purge or a Redis flush sends the origin at most the cap, not every cold key at once.
//
// The local cap is a FIFO semaphore in process. Its size is min(local cap, fleet cap): one
// instance never holds more fleet slots than the fleet has, so the local queue is where an
// instance's excess waits, and that same size is the fleet rule when Redis cannot be asked.
//
// The fleet cap is one Redis sorted set, budgetKey, whose members are the slots held across the
// fleet, "<instance>:<boot>:<seq>", scored by the server time (ms) at which their lease expires.
// Boot is random per process, so a restarted instance never reuses a member its predecessor left
// behind. Each acquisition's script first drops expired members, then adds its own if fewer than
// the limit remain; every write sets the key's PEXPIRE to the lease, so the key ends with its
// last lease. run renews this instance's members every third of a lease (ZADD XX: a member that
// was released, or lost in a flush, is never written back), so a long streamed pass keeps its
// slot while a crashed instance's slots expire within one lease. One key only: no Redis Cluster
// slot issues. It lives outside tiers.KeyPrefix: a codec bump or a purge of the cache leaves the
// fleet's accounting alone. After a flush the set restarts empty: new acquisitions are capped
// again at once, the slots in flight at the flush end with their requests.
//
// Redis is asked with a short deadline (budgetTimeout). A failure (an error, a timeout) counts in
// FleetErrors, is logged at most every budgetLogEvery, and for budgetRetry the fleet cap is then
// enforced by the local semaphore alone, without asking Redis; later acquisitions try Redis again.
// A slot taken that way has no member and is released locally only.
//
// A script that gets no answer has an unknown outcome, and a stalled Redis runs, when it
// resumes, what it received meanwhile: an acquisition sent into a stall could add a member that
// nobody holds, renews or removes, and fill the fleet's slots for a lease. As in the fetch lock of
// package tiers, the acquire script writes only if it runs before a limit, a server time (see
// redisclock) just past the moment its caller stops waiting; after an unknown outcome the member
// is removed in the background (run) until Redis answers a removal that ran after that limit.

// ErrUnavailable is wrapped by every error that means "the origin cannot be asked now"; the proxy
// answers it with 503 and Retry-After.
var ErrUnavailable = errors.New("upstream: origin unavailable")

// ErrBudget is wrapped by the error of an acquisition that found no slot of the origin budget
// within its wait. errors.Is(ErrBudget, ErrUnavailable) holds.
var ErrBudget = fmt.Errorf("%w: origin budget exhausted", ErrUnavailable)

// budgetKey is the fleet semaphore (see above). Bump its version when the members or scores change.
const budgetKey = "swr:budget:v1"

const (
	// budgetLease is how long a fleet slot lives without renewal: how long a crashed instance's
	// slots stay taken.
	budgetLease = 10 * time.Second
	// budgetTimeout bounds every Redis call of the budget.
	budgetTimeout = 250 * time.Millisecond
	// budgetRetry is how long after a Redis failure the fleet cap is enforced locally without
	// asking Redis, so that a stalled Redis costs one deadline, not one per origin request.
	budgetRetry = time.Second
	// budgetSlack is added to a caller's deadline to make the limit of an acquire script; it
	// covers the skew of the clock estimate and small clock steps (see tiers.lockSlack).
	budgetSlack = 100 * time.Millisecond
	// budgetDropRetry is the pause between attempts to remove members from Redis.
	budgetDropRetry = 50 * time.Millisecond
	// maxBudgetDrops bounds the members waiting for removal; past it they are left to expire.
	maxBudgetDrops = 4096
	// budgetLogEvery rate-limits the log of Redis failures.
	budgetLogEvery = 10 * time.Second
	// pollMin and pollMax bound the pause of a foreground acquisition polling the fleet cap.
	pollMin, pollMax = 5 * time.Millisecond, 50 * time.Millisecond
)

// BudgetOptions configure an origin budget.
type BudgetOptions struct {
	// Local is SWR_ORIGIN_MAX_CONCURRENCY: origin requests in flight per instance, 0 = unlimited.
	Local int
	// Fleet is SWR_ORIGIN_FLEET_MAX_CONCURRENCY: origin requests in flight across every instance
	// sharing Redis, 0 = unlimited.
	Fleet int
	// MaxWait is how long a foreground acquisition waits for a slot before ErrBudget; 0 or less:
	// it does not wait.
	MaxWait time.Duration
	// Redis holds the fleet semaphore. Nil: the fleet cap is enforced per instance, as when
	// Redis fails. Its calls are bounded by context deadlines, so the client must honour them
	// on the socket (ContextTimeoutEnabled, as main's newRedis sets) and should not retry.
	Redis redis.UniversalClient
	// Instance is this instance's id, the first part of its fleet members; empty: a random one.
	Instance string
	// Log receives the (rate-limited) Redis failures; nil discards them.
	Log *slog.Logger
}

// BudgetStats is a snapshot of an origin budget's counters.
type BudgetStats struct {
	// InUse is the slots this instance holds now.
	InUse int64 `json:"in_use"`
	// Waits counts the acquisitions that had to wait for a slot.
	Waits int64 `json:"waits"`
	// Timeouts counts the foreground acquisitions refused with ErrBudget.
	Timeouts int64 `json:"timeouts"`
	// Yielded counts the background acquisitions refused so that clients could go first.
	Yielded int64 `json:"yielded"`
	// FleetErrors counts the Redis failures of the fleet semaphore; each made the fleet cap a
	// local one for a while.
	FleetErrors int64 `json:"fleet_errors"`
}

// budget is the origin budget. Its methods are safe for concurrent use.
type budget struct {
	unlimited   bool
	size, bgMax int // the local semaphore's slots, and how many background may hold; 0 = none
	fleet       int // 0 = no fleet cap
	fleetBg     int
	maxWait     time.Duration
	rdb         redis.UniversalClient // nil when there is no fleet cap to ask Redis about
	prefix      string                // "<instance>:<boot>:" of this budget's members
	log         *slog.Logger

	// Tests shorten these before any use.
	lease, timeout, retry time.Duration

	mu      sync.Mutex
	held    int       // local slots taken, including those handed to a waiter
	waiters list.List // of *waiter: the foreground acquisitions waiting for a local slot, oldest first
	polling atomic.Int32

	seq     atomic.Uint64
	hmu     sync.Mutex
	members map[string]struct{} // the fleet members this instance holds: run renews them
	drops   map[string]drop     // members to remove from Redis: see flushDrops
	dropped chan struct{}       // wakes run when drops grows

	clock     redisclock.Clock
	downUntil atomic.Int64 // monotonic ns until which Redis is not asked; 0 = Redis answers
	lastLog   atomic.Int64 // monotonic ns of the latest failure log

	inUse, waits, timeouts, yielded, fleetErrors atomic.Int64
}

// waiter is a foreground acquisition queued for a local slot.
type waiter struct {
	ready   chan struct{} // closed when granted
	granted bool          // guarded by budget.mu
}

// reserve is how many of size slots background acquisitions leave free for clients.
func reserve(size int) int {
	if size <= 1 {
		return 0
	}
	return max(1, size/4)
}

// newBudget returns the budget o describes. Fleet leases are renewed only while run runs.
func newBudget(o BudgetOptions) *budget {
	local, fleet := max(o.Local, 0), max(o.Fleet, 0)
	b := &budget{
		unlimited: local == 0 && fleet == 0,
		fleet:     fleet,
		fleetBg:   fleet - reserve(fleet),
		maxWait:   o.MaxWait,
		log:       o.Log,
		lease:     budgetLease,
		timeout:   budgetTimeout,
		retry:     budgetRetry,
		members:   make(map[string]struct{}),
		drops:     make(map[string]drop),
		dropped:   make(chan struct{}, 1),
	}
	switch {
	case fleet == 0:
		b.size = local
	case local == 0:
		b.size = fleet
	default:
		b.size = min(local, fleet)
	}
	b.bgMax = b.size - reserve(b.size)
	if fleet > 0 {
		b.rdb = o.Redis
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	inst := o.Instance
	if inst == "" {
		inst = randomHex(6)
	}
	b.prefix = inst + ":" + randomHex(3) + ":"
	return b
}

func randomHex(n int) string {
	p := make([]byte, n)
	crand.Read(p)
	return hex.EncodeToString(p)
}

// acquire takes one slot of the budget, local then fleet, and returns its release, which must be
// called once the origin request is over (a second call does nothing).
//
// A foreground acquisition (a client waits for it) queues for a local slot, oldest first, then
// polls the fleet cap while holding its local slot, for MaxWait in all; then it fails with an
// error wrapping ErrBudget. When ctx ends first it fails with ctx.Err(). A background one
// (refresh-ahead, stale revalidation) never waits: it fails with ErrBudget at once when a client
// waits, locally or for the fleet, or when it would take one of the slots kept for clients (a
// quarter of each cap, at least one, when the cap is over one); its caller retries later.
//
// Without any cap it does not look at ctx and costs an atomic add and the release closure.
// Otherwise it asks Redis at most once per poll, within budgetTimeout, and a release of a fleet
// slot waits for one ZREM at most as long.
func (b *budget) acquire(ctx context.Context, background bool) (release func(), err error) {
	if b.unlimited {
		return b.grant(""), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var start time.Time // when this acquisition began to wait; zero until it had to
	if err := b.takeLocal(ctx, background, &start); err != nil {
		return nil, err
	}
	member := ""
	if b.rdb != nil {
		if member, err = b.takeFleet(ctx, background, &start); err != nil {
			b.releaseLocal()
			return nil, err
		}
	}
	return b.grant(member), nil
}

// slot is one acquisition's state, pooled: an acquisition then allocates only its release
// closure. gen changes with each release, so a closure called again finds it changed and does
// nothing, even after the slot went to another acquisition.
type slot struct {
	gen    atomic.Uint64
	b      *budget
	member string // its fleet member, "" when the fleet cap was not asked of Redis
}

var slotPool = sync.Pool{New: func() any { return new(slot) }}

func (b *budget) grant(member string) func() {
	s := slotPool.Get().(*slot)
	s.b, s.member = b, member
	b.inUse.Add(1)
	g := s.gen.Load()
	return func() { s.release(g) }
}

func (s *slot) release(g uint64) {
	if !s.gen.CompareAndSwap(g, g+1) {
		return
	}
	b, member := s.b, s.member
	s.b, s.member = nil, ""
	slotPool.Put(s)
	b.inUse.Add(-1)
	if member != "" {
		b.releaseFleet(member) // first: the local waiter it wakes then finds the fleet slot free
	}
	if !b.unlimited {
		b.releaseLocal()
	}
}

// startWait records that an acquisition waits, once.
func (b *budget) startWait(start *time.Time) {
	if start.IsZero() {
		*start = time.Now()
		b.waits.Add(1)
	}
}

// refused counts and returns the error of a foreground acquisition that found no slot.
func (b *budget) refused(which string, size int) error {
	b.timeouts.Add(1)
	return fmt.Errorf("upstream: %s budget of %d full for %v: %w", which, size, max(b.maxWait, 0), ErrBudget)
}

// takeLocal takes a local slot, waiting in line for it if it is a foreground acquisition.
func (b *budget) takeLocal(ctx context.Context, background bool, start *time.Time) error {
	b.mu.Lock()
	if background {
		if b.held >= b.bgMax || b.waiters.Len() > 0 || b.polling.Load() > 0 {
			b.mu.Unlock()
			b.yielded.Add(1)
			return ErrBudget
		}
		b.held++
		b.mu.Unlock()
		return nil
	}
	if b.held < b.size && b.waiters.Len() == 0 {
		b.held++
		b.mu.Unlock()
		return nil
	}
	if b.maxWait <= 0 {
		b.mu.Unlock()
		return b.refused("local", b.size)
	}
	w := &waiter{ready: make(chan struct{})}
	e := b.waiters.PushBack(w)
	b.mu.Unlock()
	b.startWait(start)
	t := time.NewTimer(b.maxWait - time.Since(*start))
	defer t.Stop()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	case <-t.C:
	}
	b.mu.Lock()
	if w.granted { // handed a slot while giving up
		b.mu.Unlock()
		if ctx.Err() == nil {
			return nil // the wait ended as the slot came: take it
		}
		b.releaseLocal()
		return ctx.Err()
	}
	b.waiters.Remove(e)
	b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.refused("local", b.size)
}

// releaseLocal returns a local slot: to the oldest waiter, else to the pool.
func (b *budget) releaseLocal() {
	b.mu.Lock()
	if e := b.waiters.Front(); e != nil {
		w := b.waiters.Remove(e).(*waiter)
		w.granted = true
		close(w.ready)
	} else {
		b.held--
	}
	b.mu.Unlock()
}

// stats returns a snapshot of the counters.
func (b *budget) stats() BudgetStats {
	return BudgetStats{
		InUse:       b.inUse.Load(),
		Waits:       b.waits.Load(),
		Timeouts:    b.timeouts.Load(),
		Yielded:     b.yielded.Load(),
		FleetErrors: b.fleetErrors.Load(),
	}
}
