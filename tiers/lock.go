package tiers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// The cross-instance fetch lock: one Redis string per key, redisKey(key)+lockSuffix, holding the
// token of its holder, with a TTL that the holder renews while its fetch runs.
//
// A lock call that gets no answer (a timeout, a broken connection) has an unknown outcome, and a
// stalled Redis runs, when it resumes, every command it received meanwhile: a plain SET NX sent
// into a stall takes the lock seconds after its caller gave up, and nobody would renew or delete
// it, so every fill of the key would wait for its TTL. Two rules make that impossible:
//
//   - lockScript takes the lock only if it runs before a limit, a Redis server time (see
//     redisclock) just past the moment the caller stops waiting for the answer; run later,
//     it writes nothing.
//   - after an unknown outcome, release deletes the token in the background until Redis
//     answers a release that ran after that limit. Redis runs scripts one at a time, so at that
//     point the lock call either ran before (and its lock is gone) or will be refused.
//
// The same background release follows an Unlock whose delete got no answer.

const lockSuffix = ":lock"

const (
	// lockSlack is added to the caller's deadline to make a lock call's limit. The clock errs
	// late already; the slack covers the skew between the nodes of a cluster and small clock
	// steps. A call run after the limit only fails to collapse its fill; the slack makes a
	// release run that much longer.
	lockSlack = 100 * time.Millisecond
	// releaseRetry is the pause between release attempts. A lock that a late call took before
	// its limit lives at most this long (plus a round trip) once Redis answers again.
	releaseRetry = 50 * time.Millisecond
	// maxReleasing bounds the background releases in flight. Lock calls are sent only while the
	// circuit is closed, so an outage leaves at most the calls that were in flight when it began.
	maxReleasing = 1024
)

// errLockLate reports a lock call that Redis ran after its limit: the lock was not taken.
var errLockLate = errors.New("lock call ran after its limit")

// lockScript takes the lock KEYS[1] for token ARGV[1] for ARGV[2] ms, unless another token holds
// it or Redis runs the script after ARGV[3] (server time in ms). It returns {state, server time in
// ms}, state 1 = held by token (taken now, or already: the call ran twice), 0 = held by another,
// -1 = too late, nothing written.
var lockScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[3]) then return {-1, now} end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then return {1, now} end
if v then return {0, now} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, now}
`)

// releaseScript deletes the lock KEYS[1] if it holds token ARGV[1], and returns the server time in ms.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`)

// extendScript renews the lock KEYS[1] for ARGV[2] ms if it still holds token ARGV[1].
var extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// Lock is a held cross-instance fetch lock. While held it is renewed every third of its TTL, so a
// slow origin never lets a second instance in, while a holder that dies frees the key within one TTL.
type Lock struct {
	stop chan struct{}
	done chan struct{}
}

// Unlock stops renewing the lock and releases it if it is still ours. It waits at most one Redis
// deadline: if the release gets no answer, it goes on in the background. Safe to call more than
// once and on a nil Lock.
func (l *Lock) Unlock() {
	if l == nil || l.stop == nil {
		return
	}
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

func newToken() string {
	var tok [12]byte
	rand.Read(tok[:])
	return hex.EncodeToString(tok[:])
}

// TryLock tries to take the cross-instance fetch lock of key for ttl. It reports whether this
// instance holds it; the caller must Unlock a held lock. Without Redis, or with Redis unavailable,
// every caller holds it (there is nobody to collapse with, or nobody who can tell), and err says why.
// A call that gets no answer within the Redis deadline never leaves a lock behind: see lockScript.
func (s *Store) TryLock(ctx context.Context, key string, ttl time.Duration) (*Lock, bool, error) {
	if s.rdb == nil {
		return nil, true, nil
	}
	if !s.br.allow() {
		return nil, true, ErrL2Unavailable
	}
	lk := redisKey(key) + lockSuffix
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	limit, ok := s.clock.At(deadline)
	if !ok {
		// The first lock of this process: learn the server's clock first. Nothing that could
		// take a lock is sent if this fails.
		sent := time.Now()
		tm, err := s.rdb.Time(ctx).Result()
		s.observe(sent, err)
		if err != nil {
			return nil, true, fmt.Errorf("tiers: l2 lock %q: server time: %w", key, err)
		}
		s.clock.Sample(sent, tm.UnixMilli())
		limit, _ = s.clock.At(deadline)
	}
	limit += lockSlack.Milliseconds()
	token := newToken()
	sent := time.Now()
	res, err := lockScript.Run(ctx, s.rdb, []string{lk}, token, ttl.Milliseconds(), limit).Int64Slice()
	s.observe(sent, err)
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("lock script answered %v", res)
	}
	if err != nil {
		if !known(err) {
			// The script may have run, or may yet run (before its limit).
			s.release(lk, token, limit, ttl)
		}
		return nil, true, fmt.Errorf("tiers: l2 lock %q: %w", key, err)
	}
	s.clock.Sample(sent, res[1])
	switch res[0] {
	case 0:
		return nil, false, nil
	case -1: // only when the clock estimate was off: it has been corrected from this answer
		return nil, true, fmt.Errorf("tiers: l2 lock %q: %w", key, errLockLate)
	}
	l := &Lock{stop: make(chan struct{}), done: make(chan struct{})}
	go s.hold(l, lk, token, ttl) // stopped by Unlock
	return l, true, nil
}

// hold renews the lock lk every third of ttl until l is unlocked, then releases it.
func (s *Store) hold(l *Lock, lk, token string, ttl time.Duration) {
	defer close(l.done)
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			if !s.br.allow() {
				s.release(lk, token, 0, ttl) // the circuit is open: in the background
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			defer cancel()
			sent := time.Now()
			now, err := releaseScript.Run(ctx, s.rdb, []string{lk}, token).Int64()
			s.observe(sent, err)
			if err == nil {
				s.clock.Sample(sent, now)
			} else if !errors.Is(err, redis.ErrClosed) {
				s.release(lk, token, 0, ttl)
			}
			return
		case <-t.C:
			if !s.br.allow() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			sent := time.Now()
			s.observe(sent, extendScript.Run(ctx, s.rdb, []string{lk}, token, ttl.Milliseconds()).Err())
			cancel()
		}
	}
}

// release deletes the lock lk if token holds it, in the background, until Redis answers a
// release that ran after limit (a server time after which no lock call with this token can take
// the lock; 0 when the lock was known to be taken, and any answer ends it). It tries every
// releaseRetry, so a lock taken by a call that ran late is gone within that (plus a round trip)
// of Redis answering again. While the circuit is open, one release at a time in the process
// asks Redis (a stalled Redis holds each attempt for a deadline: one pool connection, not one
// per lock). It gives up once every lock the token could have taken has expired (lockSlack
// plus ttl from now), or when the client is closed.
func (s *Store) release(lk, token string, limit int64, ttl time.Duration) {
	if s.releasing.Add(1) > maxReleasing {
		s.releasing.Add(-1)
		s.log.Warn("too many fetch locks to release: leaving one to expire", "lock", lk, "ttl", ttl)
		return
	}
	giveUp := time.Now().Add(lockSlack + ttl)
	go func() { // ends by giveUp at the latest
		defer s.releasing.Add(-1)
		for ; time.Now().Before(giveUp); time.Sleep(releaseRetry) {
			open := !s.br.allow()
			if open && !s.releaseGate.CompareAndSwap(false, true) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			sent := time.Now()
			now, err := releaseScript.Run(ctx, s.rdb, []string{lk}, token).Int64()
			cancel()
			if open {
				s.releaseGate.Store(false)
			}
			s.observe(sent, err)
			if errors.Is(err, redis.ErrClosed) {
				return
			}
			if err == nil {
				s.clock.Sample(sent, now)
				if now > limit {
					return
				}
			}
		}
		s.log.Warn("gave up releasing a fetch lock: it expires on its own", "lock", lk)
	}()
}

// known reports whether a failed call certainly took no lock: Redis answered with an error (the
// script's only write is its last command), or the command was never sent (no connection).
func known(err error) bool {
	var oe *net.OpError
	return isAnswer(err) || errors.As(err, &oe) && oe.Op == "dial" ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed)
}

// Locked reports whether some instance holds the fetch lock of key. Errors read as false.
func (s *Store) Locked(ctx context.Context, key string) bool {
	return s.exists(ctx, redisKey(key)+lockSuffix)
}
