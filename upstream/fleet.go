package upstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fleet's half of the origin budget: a semaphore of leases in the Redis sorted set
// budgetKey (scripts that run on Redis's clock), their renewal by run, the removal of slots a
// stalled call may have left, and the fallback to a local cap while Redis fails.

// drop is a member to remove from Redis.
type drop struct {
	notAfter int64     // server ms after which no script can add it anymore; 0 = it is there already
	giveUp   time.Time // when it has expired anyway
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
	notAfter, ok := b.clock.At(deadline)
	if !ok {
		// The first acquisition of this process: learn the server's clock first.
		sent := time.Now()
		tm, err := b.rdb.Time(ctx).Result()
		if err != nil {
			return false, fmt.Errorf("upstream: budget: server time: %w", err)
		}
		b.clock.Sample(sent, tm.UnixMilli())
		notAfter, _ = b.clock.At(deadline)
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
	b.clock.Sample(sent, res[1])
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
	b.clock.Sample(sent, now)
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
	b.clock.Sample(sent, now)
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
	b.clock.Sample(sent, srv)
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

// budgetEpoch anchors the monotonic clock of downUntil and lastLog.
var budgetEpoch = time.Now()

func monoNs() int64 { return int64(time.Since(budgetEpoch)) }
