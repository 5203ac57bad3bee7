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

// Warm copies the objects of the fleet's hot set, newest first, from L2 into L1, without asking
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
		names, objs, err := s.warmRead(ctx, offset)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err() // the time limit, whatever the client made of it
			}
			if errors.Is(err, context.DeadlineExceeded) && keys > 0 {
				return keys, bytes, nil // the time limit: what fitted in it
			}
			return keys, bytes, err
		}
		now := time.Now()
		for i, o := range objs {
			if o == nil || len(o.Variants) == 0 || !o.expires.After(now) || s.Peek(names[i]) != nil {
				continue
			}
			if bytes+int64(o.Size()) > maxBytes {
				continue // a smaller one further down may still fit
			}
			s.promote(names[i], o, start)
			if s.Peek(names[i]) != nil {
				keys++
				bytes += int64(o.Size())
			}
		}
		if len(names) < warmPage {
			break
		}
	}
	return keys, bytes, nil
}

// warmRead reads one page of the hot set, newest first, and the objects of its keys, in two
// round trips.
func (s *Store) warmRead(parent context.Context, offset int64) ([]string, []*Object, error) {
	ctx, cancel := context.WithTimeout(parent, s.timeout*4)
	defer cancel()
	// The warm-up's own time limit ending a call says nothing of Redis: only the calls' own
	// deadlines and errors count for the circuit.
	observe := func(sent time.Time, err error) {
		if parent.Err() == nil {
			s.observe(sent, err)
		}
	}
	sent := time.Now()
	names, err := s.rdb.ZRevRange(ctx, hotSet, offset, offset+warmPage-1).Result()
	observe(sent, err)
	if err != nil || len(names) == 0 {
		return nil, nil, err
	}
	cmds := make([]*redis.MapStringStringCmd, len(names))
	sent = time.Now()
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range names {
			cmds[i] = p.HGetAll(ctx, RedisKey(k))
		}
		return nil
	})
	observe(sent, err)
	if err != nil {
		return nil, nil, err
	}
	objs := make([]*Object, len(names))
	for i, k := range names {
		objs[i] = s.objectOf(ctx, k, RedisKey(k), cmds[i].Val())
	}
	return names, objs, nil
}
