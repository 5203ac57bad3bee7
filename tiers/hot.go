package tiers

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Hotness shared through Redis: which keys clients asked for recently, on any instance (for
// invalidation mode auto).

// MarkHot records in Redis that clients asked for keys within the last window, so that any
// instance can tell hot keys from cold ones (invalidation mode auto), and adds them to the
// fleet's hot set, which starting instances warm their L1 from (Warm).
func (s *Store) MarkHot(ctx context.Context, keys []string, window time.Duration) error {
	if s.rdb == nil || len(keys) == 0 {
		return nil
	}
	if !s.br.allow() {
		return ErrL2Unavailable
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout*4)
	defer cancel()
	sent := time.Now()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		now := float64(time.Now().UnixMilli())
		members := make([]redis.Z, len(keys))
		for i, k := range keys {
			p.Set(ctx, redisKey(k)+hotSuffix, "1", window)
			members[i] = redis.Z{Score: now, Member: k}
		}
		// The fleet's hot set (warm.go): the newest HotSetMax keys asked for, on any instance.
		p.ZAdd(ctx, hotSet, members...)
		p.ZRemRangeByRank(ctx, hotSet, 0, -HotSetMax-1)
		p.PExpire(ctx, hotSet, max(window, time.Hour))
		return nil
	})
	s.observe(sent, err)
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
