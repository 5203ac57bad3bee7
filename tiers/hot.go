package tiers

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Hotness shared through Redis: which keys clients asked for recently, on any instance (for
// invalidation mode auto).

// markHotBatch bounds the keys one MarkHot pipeline carries. Each Redis command runs alone: a
// ZADD of 20 000 members and its trim hold every client, and a large pipeline competes with them
// for Redis's one thread. A tracker sharing the keys a burst of fills had made hot (20 000 marks
// and one such ZADD, every 5 s while BenchmarkBytesPerObject filled 100 000 objects on a 2-core
// machine) kept Redis from answering anyone for a whole deadline, so the instance's breaker
// opened and, closing, dropped its L1. markHotMax bounds the whole share (one MarkHot call, the
// tracker sharing its hot keys every 5 s; Store.shareMax), so that a slow Redis cannot hold the
// tracker's loop for one deadline per batch. It must stay well above the Redis client's own
// limits on one call (redisconn: a dial, a wait for a connection, a read or write): a batch the
// bound cuts is not reported to the breaker, so a stalled Redis must fail a batch on its own
// first, as it does within those limits (TestTheHotShareBoundLeavesStallsToTheBreaker).
const (
	markHotBatch = 500
	markHotMax   = 5 * time.Second
)

// MarkHot records in Redis that clients asked for keys within the last window, so that any
// instance can tell hot keys from cold ones (invalidation mode auto), and adds them to the
// fleet's hot set, which starting instances warm their L1 from (Warm). The keys go in batches
// of markHotBatch, one after another, within Store.shareMax (markHotMax) in all; it stops at the
// first that fails.
func (s *Store) MarkHot(ctx context.Context, keys []string, window time.Duration) error {
	if s.rdb == nil || len(keys) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, orDefault(s.shareMax, markHotMax))
	defer cancel()
	now := float64(time.Now().UnixMilli())
	for start := 0; start < len(keys); start += markHotBatch {
		batch := keys[start:min(start+markHotBatch, len(keys))]
		if err := s.markHot(ctx, batch, now, window); err != nil {
			return err
		}
	}
	return nil
}

// markHot sends one batch of MarkHot, scored now, within the share's context; each trims and
// renews the hot set, which so never holds more than HotSetMax and a batch, whichever batch fails.
func (s *Store) markHot(share context.Context, keys []string, now float64, window time.Duration) error {
	if !s.br.allow() {
		return ErrL2Unavailable
	}
	ctx, cancel := context.WithTimeout(share, s.timeout*4)
	defer cancel()
	sent := time.Now()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		members := make([]redis.Z, len(keys))
		for i, k := range keys {
			p.Set(ctx, redisKey(k)+hotSuffix, "1", window)
			members[i] = redis.Z{Score: now, Member: k}
		}
		// The fleet's hot set (warm.go): the newest HotSetMax keys asked for, on any instance.
		// GT: an instance whose share comes later but was scored earlier (a slow Redis, a
		// clock behind) never lowers the newer mark another instance made.
		p.ZAddArgs(ctx, hotSet, redis.ZAddArgs{GT: true, Members: members})
		p.ZRemRangeByRank(ctx, hotSet, 0, -HotSetMax-1)
		p.PExpire(ctx, hotSet, max(window, time.Hour))
		return nil
	})
	if err == nil || !ended(share) {
		// A batch cut by the share's bound (or its caller) says nothing of Redis's health, and
		// one cut late would read to the breaker as a call that waited its whole deadline.
		s.observe(sent, err)
	}
	if err != nil {
		return fmt.Errorf("tiers: l2 mark hot: %w", err)
	}
	return nil
}

// IsHot reports whether some instance recorded a request for key within its refresh window.
// Errors read as false.
func (s *Store) IsHot(ctx context.Context, key string) bool {
	return s.exists(ctx, redisKey(key)+hotSuffix)
}

// ended reports whether ctx is done or its deadline has passed: a read cut at the deadline can
// return before the context's own timer has marked it done.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
