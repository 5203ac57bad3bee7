package upstream

import (
	"container/list"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
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
// serverClock) just past the moment its caller stops waiting; after an unknown outcome the member
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

	clock     serverClock
	downUntil atomic.Int64 // monotonic ns until which Redis is not asked; 0 = Redis answers
	lastLog   atomic.Int64 // monotonic ns of the latest failure log

	inUse, waits, timeouts, yielded, fleetErrors atomic.Int64
}

// waiter is a foreground acquisition queued for a local slot.
type waiter struct {
	ready   chan struct{} // closed when granted
	granted bool          // guarded by budget.mu
}

// drop is a member to remove from Redis.
type drop struct {
	notAfter int64     // server ms after which no script can add it anymore; 0 = it is there already
	giveUp   time.Time // when it has expired anyway
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

// takeFleet takes a fleet slot in Redis and returns its member, polling while the fleet is full
// if it is a foreground acquisition. It returns "" and no error when Redis cannot be asked: the
// local slot already held is then the fleet rule.
func (b *budget) takeFleet(ctx context.Context, background bool, start *time.Time) (string, error) {
	limit := b.fleet
	if background {
		limit = b.fleetBg
	}
	member := b.prefix + strconv.FormatUint(b.seq.Add(1), 10)
	polling := false
	defer func() {
		if polling {
			b.polling.Add(-1)
		}
	}()
	for pause := pollMin; ; pause = min(2*pause, pollMax) {
		if b.down() {
			return "", nil
		}
		got, err := b.tryFleet(ctx, member, limit)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			b.failed(err)
			return "", nil
		}
		if got {
			b.hmu.Lock()
			b.members[member] = struct{}{}
			b.hmu.Unlock()
			return member, nil
		}
		if background {
			b.yielded.Add(1)
			return "", ErrBudget
		}
		if !polling {
			polling = true
			b.polling.Add(1)
			b.startWait(start)
		}
		left := b.maxWait - time.Since(*start)
		if left <= 0 {
			return "", b.refused("fleet", b.fleet)
		}
		t := time.NewTimer(min(pause/2+rand.N(pause), left)) // jitter spreads the fleet's polls
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
	}
}

// acquireScript adds member ARGV[1] to the semaphore KEYS[1] with a lease of ARGV[3] ms if fewer
// than ARGV[2] unexpired members are there, unless Redis runs it after ARGV[4] (server ms). It
// returns {state, server ms}: state 1 = held (added now, or already: the call ran twice), 0 = full,
// -1 = too late, nothing written.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[4]) then return {-1, now} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {1, now} end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return {0, now} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, now}
`)

// renewScript extends the lease of the members ARGV[2..] of KEYS[1] that are still there to
// ARGV[1] ms from now, and returns the server time in ms.
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = now + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', exp, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return now
`)

// dropScript removes the members ARGV from KEYS[1] and returns the server time in ms.
var dropScript = redis.NewScript(`
for i = 1, #ARGV, 256 do redis.call('ZREM', KEYS[1], unpack(ARGV, i, math.min(i + 255, #ARGV))) end
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`)

// tryFleet runs acquireScript once for member, within budgetTimeout.
func (b *budget) tryFleet(ctx context.Context, member string, limit int) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	notAfter, ok := b.clock.at(deadline)
	if !ok {
		// The first acquisition of this process: learn the server's clock first.
		sent := time.Now()
		tm, err := b.rdb.Time(ctx).Result()
		if err != nil {
			return false, fmt.Errorf("upstream: budget: server time: %w", err)
		}
		b.clock.sample(sent, tm.UnixMilli())
		notAfter, _ = b.clock.at(deadline)
	}
	notAfter += budgetSlack.Milliseconds()
	sent := time.Now()
	res, err := acquireScript.Run(ctx, b.rdb, []string{budgetKey}, member, limit, b.lease.Milliseconds(), notAfter).Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("script answered %v", res)
	}
	if err != nil {
		var re redis.Error
		if !errors.As(err, &re) && !errors.Is(err, redis.ErrClosed) {
			b.drop(member, notAfter) // it may have run, or may yet run (before notAfter)
		}
		return false, fmt.Errorf("upstream: budget acquire %s: %w", member, err)
	}
	b.up()
	b.clock.sample(sent, res[1])
	// -1 only when the clock estimate was off: it has been corrected from this answer, and the
	// next poll asks again.
	return res[0] == 1, nil
}

// releaseFleet removes member from Redis, waiting at most budgetTimeout; if that fails, or Redis
// is not being asked, run removes it later (else its lease ends).
func (b *budget) releaseFleet(member string) {
	b.hmu.Lock()
	delete(b.members, member)
	b.hmu.Unlock()
	if b.down() {
		b.drop(member, 0)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	sent := time.Now()
	now, err := dropScript.Run(ctx, b.rdb, []string{budgetKey}, member).Int64()
	if err != nil {
		if !errors.Is(err, redis.ErrClosed) {
			b.failed(fmt.Errorf("upstream: budget release %s: %w", member, err))
			b.drop(member, 0)
		}
		return
	}
	b.up()
	b.clock.sample(sent, now)
}

// drop queues member for removal from Redis by run; notAfter as in drop.
func (b *budget) drop(member string, notAfter int64) {
	b.hmu.Lock()
	full := len(b.drops) >= maxBudgetDrops
	if !full {
		b.drops[member] = drop{notAfter, time.Now().Add(b.lease + budgetSlack + b.timeout)}
	}
	b.hmu.Unlock()
	if full {
		b.logFailure("too many fleet slots to remove: leaving one to expire", "member", member, "lease", b.lease)
		return
	}
	select {
	case b.dropped <- struct{}{}:
	default:
	}
}

// down reports whether Redis failed less than b.retry ago, so that it is not asked now.
func (b *budget) down() bool {
	u := b.downUntil.Load()
	return u != 0 && monoNs() < u
}

// failed records a Redis failure: counted, logged (rate-limited), and Redis is left alone for b.retry.
func (b *budget) failed(err error) {
	b.fleetErrors.Add(1)
	b.downUntil.Store(monoNs() + int64(b.retry))
	b.logFailure("origin budget: redis failed, the fleet cap is enforced per instance", "err", err)
}

// up records that Redis answered.
func (b *budget) up() {
	if b.downUntil.Load() != 0 {
		b.downUntil.Store(0)
	}
}

// logFailure logs a warning, at most once per budgetLogEvery.
func (b *budget) logFailure(msg string, args ...any) {
	now, last := monoNs(), b.lastLog.Load()
	if last != 0 && now-last < int64(budgetLogEvery) || !b.lastLog.CompareAndSwap(last, now) {
		return
	}
	b.log.Warn(msg, args...)
}

// run renews this instance's fleet leases every third of a lease and removes from Redis the
// members queued by drop, until ctx ends; it then removes every member it knows of (within one
// Redis deadline, best effort) and returns nil. Without a fleet cap in Redis it just waits for
// ctx. Call it once.
func (b *budget) run(ctx context.Context) error {
	if b.rdb == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(b.lease / 3)
	defer t.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			b.removeAll(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
			b.renew(ctx)
		case <-b.dropped:
		case <-retry:
		}
		retry = nil
		if !b.flushDrops(ctx) {
			retry = time.After(budgetDropRetry)
		}
	}
}

// renew extends the leases of the members this instance holds, in one call.
func (b *budget) renew(ctx context.Context) {
	b.hmu.Lock()
	args := make([]any, 1, 1+len(b.members))
	args[0] = b.lease.Milliseconds()
	for m := range b.members {
		args = append(args, m)
	}
	b.hmu.Unlock()
	if len(args) == 1 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	sent := time.Now()
	now, err := renewScript.Run(cctx, b.rdb, []string{budgetKey}, args...).Int64()
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, redis.ErrClosed) {
			b.failed(fmt.Errorf("upstream: budget renew %d leases: %w", len(args)-1, err))
		}
		return
	}
	b.up()
	b.clock.sample(sent, now)
}

// flushDrops removes the queued members from Redis in one call, forgets those surely gone (the
// removal ran after their notAfter) or expired anyway, and reports whether none is left.
func (b *budget) flushDrops(ctx context.Context) bool {
	b.hmu.Lock()
	now := time.Now()
	args := make([]any, 0, len(b.drops))
	for m, d := range b.drops {
		if now.After(d.giveUp) {
			delete(b.drops, m)
			continue
		}
		args = append(args, m)
	}
	b.hmu.Unlock()
	if len(args) == 0 {
		return true
	}
	cctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	sent := time.Now()
	srv, err := dropScript.Run(cctx, b.rdb, []string{budgetKey}, args...).Int64()
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, redis.ErrClosed) {
			b.failed(fmt.Errorf("upstream: budget remove %d members: %w", len(args), err))
		}
		return false
	}
	b.up()
	b.clock.sample(sent, srv)
	b.hmu.Lock()
	defer b.hmu.Unlock()
	for _, m := range args {
		if d, ok := b.drops[m.(string)]; ok && srv > d.notAfter {
			delete(b.drops, m.(string))
		}
	}
	return len(b.drops) == 0
}

// removeAll removes every member this instance holds or has queued, within one Redis deadline:
// the instance is stopping, its slots are free for the fleet now rather than after a lease.
func (b *budget) removeAll(ctx context.Context) {
	b.hmu.Lock()
	args := make([]any, 0, len(b.members)+len(b.drops))
	for m := range b.members {
		args = append(args, m)
	}
	for m := range b.drops {
		args = append(args, m)
	}
	b.hmu.Unlock()
	if len(args) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if err := dropScript.Run(ctx, b.rdb, []string{budgetKey}, args...).Err(); err != nil {
		b.log.Warn("origin budget: removing this instance's fleet slots failed: they expire on their own",
			"slots", len(args), "lease", b.lease, "err", err)
	}
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

// serverClock estimates the Redis server's clock from the server times that scripts return,
// without trusting this host's wall clock: the offset is kept against the monotonic clock (as
// package tiers does for its fetch lock). Safe for concurrent use.
type serverClock struct {
	// off is the server time (ms) of the latest sample minus the monotonic time at which its
	// call was sent: an upper bound of the true offset (the script ran after the call was
	// sent), so limits err late. 0 = no sample yet.
	off atomic.Int64
}

// budgetEpoch anchors the monotonic clock of serverClock and downUntil.
var budgetEpoch = time.Now()

func monoNs() int64 { return int64(time.Since(budgetEpoch)) }

func monoMs(t time.Time) int64 { return t.Sub(budgetEpoch).Milliseconds() }

func (c *serverClock) sample(sent time.Time, serverMs int64) {
	if off := serverMs - monoMs(sent); off != 0 {
		c.off.Store(off)
	}
}

// at returns the server time (ms) at local instant t, and false without a sample.
func (c *serverClock) at(t time.Time) (int64, bool) {
	off := c.off.Load()
	return monoMs(t) + off, off != 0
}
