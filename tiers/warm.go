package tiers

// Warm start: the fleet's hot set (the keys clients asked for most recently, on any instance,
// recorded by MarkHot) lets a starting instance fill its L1 from L2 before it serves, so that its
// first requests for them are L1 hits and the origin sees none of them.

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// HotSetMax bounds the fleet's hot set: the newest keys asked for are kept, the older dropped.
const HotSetMax = 10000

// hotSet is a sorted set of cache keys scored by when a client last asked for them (Unix ms).
const hotSet = KeyPrefix + "{idx}:hot"

// warmPage is how many keys Warm reads from Redis per round trip.
const warmPage = 200

// Warm copies the objects of the fleet's hot set, highest ranked first, from L2 into L1, without asking
// the origin, as long as they fit in maxBytes (as L1 weighs them; one that does not fit is
// skipped) and ctx is not done. Keys already in L1,
// and objects without a variant still alive, are skipped; corrupt variants are dropped (and
// deleted) as on any L2 read; an invalidation that lands meanwhile wins (the promotion fences).
// It returns what it loaded; without Redis it loads nothing. An error (Redis failing, or ctx
// done before anything could be read) comes with what was loaded before it.
func (s *Store) Warm(ctx context.Context, maxBytes int64) (keys int, bytes int64, err error) {
	start := time.Now()
	defer func() {
		s.warmKeys.Add(int64(keys))
		s.warmBytes.Add(bytes)
		s.warmNanos.Store(int64(time.Since(start)))
	}()
	if s.rdb == nil || maxBytes <= 0 {
		return 0, 0, nil
	}
	for offset := int64(0); offset < HotSetMax && bytes < maxBytes; offset += warmPage {
		if !s.br.allow() {
			return keys, bytes, ErrL2Unavailable
		}
		n, k, b, err := s.warmPage(ctx, offset, maxBytes-bytes, start)
		keys, bytes = keys+k, bytes+b
		if err != nil {
			if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(dl) {
				// the time limit, whatever the client made of it (its connection deadline can
				// fire a moment before the context's own timer)
				err = context.DeadlineExceeded
				if ctx.Err() != nil {
					err = ctx.Err()
				}
			}
			if errors.Is(err, context.DeadlineExceeded) && keys > 0 {
				return keys, bytes, nil // the time limit: what fitted in it
			}
			return keys, bytes, err
		}
		if n < warmPage {
			break
		}
	}
	return keys, bytes, nil
}

// warmBatch bounds what one pipelined read of objects may bring back, in bytes as Redis
// holds them, so that no page of large objects is read whole (or times out) at once.
const warmBatch = 4 << 20

// warmPage warms from one page of the hot set, highest ranked first, within budget bytes: it
// lists the page, leaves out the keys L1 holds, asks Redis how large the others are (one
// cheap round trip), and reads only those that fit, in batches of at most warmBatch. It returns
// how many keys the page held, and the keys and bytes it loaded.
func (s *Store) warmPage(ctx context.Context, offset, budget int64, start time.Time) (n, keys int, bytes int64, err error) {
	names, err := warmCall(s, ctx, func(ctx context.Context) ([]string, error) {
		return s.rdb.ZRevRange(ctx, hotSet, offset, offset+warmPage-1).Result()
	})
	if err != nil || len(names) == 0 {
		return len(names), 0, 0, err
	}
	var todo []string
	for _, k := range names {
		if s.Peek(k) == nil {
			todo = append(todo, k)
		}
	}
	if len(todo) == 0 {
		return len(names), 0, 0, nil
	}
	sizes, err := warmCall(s, ctx, func(ctx context.Context) ([]int64, error) {
		cmds := make([]*redis.IntCmd, len(todo))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range todo {
				cmds[i] = p.MemoryUsage(ctx, redisKey(k), 0)
			}
			return nil
		})
		out := make([]int64, len(todo))
		for i, c := range cmds {
			out[i] = c.Val() // 0 for a key gone meanwhile
		}
		if errors.Is(err, redis.Nil) {
			err = nil
		}
		return out, err
	})
	if err != nil {
		return len(names), 0, 0, err
	}
	var batch []string
	var batchBytes, planned int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		objs, err := s.warmRead(ctx, batch)
		if err != nil {
			return err
		}
		now := time.Now()
		for i, o := range objs {
			if o == nil || len(o.Variants) == 0 || !o.expiresAt().After(now) || bytes+int64(o.Size()) > budget {
				continue
			}
			s.promote(batch[i], o, start)
			if s.Peek(batch[i]) != nil {
				keys++
				bytes += int64(o.Size())
			}
		}
		batch, batchBytes = batch[:0], 0
		return nil
	}
	for i, k := range todo {
		size := sizes[i]
		// Redis's count (allocator overhead included) runs to a few times L1's weight: read at
		// most 4× the budget as Redis counts it, and weigh exactly once decoded.
		if size <= 0 || planned+size > 4*budget {
			continue
		}
		if batchBytes+size > warmBatch {
			if err := flush(); err != nil {
				return len(names), keys, bytes, err
			}
		}
		batch, batchBytes, planned = append(batch, k), batchBytes+size, planned+size
	}
	return len(names), keys, bytes, flush()
}

// warmCall runs one warm-up call to Redis with the store's deadline for a bulk call. Its
// outcome does not feed the circuit breaker or the error count: a warm-up reads in bulk, and
// its slowness says nothing of the calls that serve requests.
func warmCall[T any](s *Store, ctx context.Context, call func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout*4)
	defer cancel()
	return call(ctx)
}

// warmRead reads the objects of keys in one pipelined round trip.
func (s *Store) warmRead(ctx context.Context, keys []string) ([]*Object, error) {
	return warmCall(s, ctx, func(ctx context.Context) ([]*Object, error) {
		cmds := make([]*redis.MapStringStringCmd, len(keys))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.HGetAll(ctx, redisKey(k))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		objs := make([]*Object, len(keys))
		for i, k := range keys {
			objs[i] = s.objectOf(ctx, k, redisKey(k), cmds[i].Val())
		}
		return objs, nil
	})
}
