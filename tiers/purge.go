package tiers

import (
	"context"
	"fmt"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// Dropping keys: clears (Delete), soft purges (MarkStale), coherence messages (Forget), and the
// fences that keep a read that began before any of them out of L1; and hit-for-pass marks.

// Fences (see promote) live fenceTTL and weigh their key plus fenceOverhead bytes (otter's node
// and the timestamp, measured), within fenceMaxBytes in all: about 50 000 fences of short keys, a
// thousand of 8 KiB ones. Evicting one early costs only promotions (see fenceLost), never coherence.
const (
	fenceTTL      = 10 * time.Second
	fenceOverhead = 112
	fenceMaxBytes = 8 << 20
)

func fenceWeight(key string) uint32 { return uint32(min(len(key)+fenceOverhead, 1<<31)) }

// clearScript removes every variant of a key but keeps (and bumps) its generation for a while,
// so a fetch that began before the clear is refused by setScript. Returns the new generation.
var clearScript = redis.NewScript(`
local g = tonumber(redis.call('HGET', KEYS[1], 'g') or '0') + 1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'g', g)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return g
`)

// staleScript bumps the generation of an existing key, which makes every stored variant stale
// (a soft purge) without removing it, and keeps the hash (so the generation) for at least
// ARGV[1] ms: a fetch that began before the purge may store after the variants' own lifetime.
// Returns 1 when the key existed.
var staleScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'g', 1)
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
`)

// Delete clears key in both tiers of this instance (other instances' L1s are the caller's business:
// see Forget). In-flight fetches of the key can no longer store their result.
func (s *Store) Delete(ctx context.Context, key string) error {
	s.fences.Set(key, time.Now().UnixNano())
	s.l1.Compute(key, s.indexed(key, func(old *Object, found bool) (*Object, otter.ComputeOp) {
		var gen uint64
		if found {
			gen = old.Gen
		}
		t := newObject(key, gen+1, nil)
		t.expires = time.Now().Add(s.tombstone).UnixNano()
		return t, otter.WriteOp
	}))
	if s.rdb == nil {
		return nil
	}
	if !s.br.allow() {
		return fmt.Errorf("tiers: l2 delete %q: %w", key, ErrL2Unavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	sent := time.Now()
	err := clearScript.Run(ctx, s.rdb, []string{redisKey(key)}, s.tombstone.Milliseconds()).Err()
	s.observe(sent, err)
	if err != nil {
		return fmt.Errorf("tiers: l2 delete %q: %w", key, err)
	}
	// The L1 tombstone has done its job for this instance; L2 now holds the generation.
	s.l1.Invalidate(key)
	return nil
}

// MarkStale makes every variant of key stale in both tiers (a soft purge): they stay servable as
// stale while a refresh runs, and fetches that began earlier can no longer store their result.
// It reports whether the key was cached.
func (s *Store) MarkStale(ctx context.Context, key string) (bool, error) {
	s.fences.Set(key, time.Now().UnixNano())
	found := false
	s.l1.ComputeIfPresent(key, func(old *Object) (*Object, otter.ComputeOp) {
		found = len(old.Variants) > 0
		o := newObject(key, old.Gen+1, old.Variants)
		return o, otter.WriteOp
	})
	if s.rdb == nil {
		return found, nil
	}
	if !s.br.allow() {
		return found, fmt.Errorf("tiers: l2 mark stale %q: %w", key, ErrL2Unavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	sent := time.Now()
	n, err := staleScript.Run(ctx, s.rdb, []string{redisKey(key)}, s.tombstone.Milliseconds()).Int()
	s.observe(sent, err)
	if err != nil {
		return found, fmt.Errorf("tiers: l2 mark stale %q: %w", key, err)
	}
	s.l1.Invalidate(key) // L2 is the truth now; the next read promotes the bumped object
	return found || n == 1, nil
}

// Forget drops key from this instance's L1 only (the answer to a coherence message).
// L2 reads that began before are not copied into L1 afterwards.
func (s *Store) Forget(key string) {
	s.fences.Set(key, time.Now().UnixNano())
	s.l1.Invalidate(key)
}

// ForgetAll drops this instance's whole L1; L2 reads that began before are not copied into it.
func (s *Store) ForgetAll() {
	s.fenceAll.Store(time.Now().UnixNano())
	s.l1.InvalidateAll()
}

// MarkPass records in L1 that key's responses are not cacheable, for ttl: lookups then send the
// request straight to the origin instead of queueing behind one another's fetch.
func (s *Store) MarkPass(key string, ttl time.Duration) {
	o := newObject(key, 0, nil)
	o.Pass = true
	o.expires = time.Now().Add(ttl).UnixNano()
	s.l1.Compute(key, s.indexed(key, func(old *Object, found bool) (*Object, otter.ComputeOp) {
		if found && (len(old.Variants) > 0 || old.Gen > 0) {
			return old, otter.CancelOp // a stored response or a recent invalidation wins
		}
		return o, otter.WriteOp
	}))
}
