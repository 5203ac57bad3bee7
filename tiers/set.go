package tiers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// Storing a variant: L2 first (a Lua script that respects the generation and the bounds), then L1.

// setScript stores one variant (field ARGV[2], value ARGV[3]) in the object's hash KEYS[1] unless
// the object's generation moved past ARGV[1], the one the fetch began under (a clear or soft purge
// landed meanwhile). The field "o" lists the variant fields, least recently stored first; when a
// new variant would make more than ARGV[5], or the variants together more than ARGV[6] bytes,
// the least recently stored ones go, and only them.
// Fields that are gone (a corrupt variant a reader deleted) drop out of the list here. The hash's
// lifetime is extended to ARGV[4] ms if shorter. It returns 1 when stored, 0 when refused.
var setScript = redis.NewScript(`
local h, f, max = KEYS[1], ARGV[2], tonumber(ARGV[5])
local g = tonumber(redis.call('HGET', h, 'g') or '0')
if g > tonumber(ARGV[1]) then return 0 end
if tonumber(ARGV[1]) > g then redis.call('HSET', h, 'g', ARGV[1]) end
local order = {}
for v in string.gmatch(redis.call('HGET', h, 'o') or '', '%S+') do
  if v ~= f and redis.call('HEXISTS', h, v) == 1 then order[#order + 1] = v end
end
local n = redis.call('HLEN', h) - redis.call('HEXISTS', h, 'g') - redis.call('HEXISTS', h, 'o')
if redis.call('HEXISTS', h, f) == 0 then n = n + 1 end
local first = 1
while n > max and first <= #order do
  redis.call('HDEL', h, order[first])
  n, first = n - 1, first + 1
end
if n > max then -- variants missing from the list: only a damaged hash has them
  for _, v in ipairs(redis.call('HKEYS', h)) do
    if n <= max then break end
    if v ~= f and v ~= 'g' and v ~= 'o' then redis.call('HDEL', h, v); n = n - 1 end
  end
end
local bytes, limit = string.len(ARGV[3]), tonumber(ARGV[6])
for i = first, #order do bytes = bytes + redis.call('HSTRLEN', h, order[i]) end
while bytes > limit and first <= #order do -- the least recently stored go first, until they fit
  bytes = bytes - redis.call('HSTRLEN', h, order[first])
  redis.call('HDEL', h, order[first])
  first = first + 1
end
local kept = {}
for i = first, #order do kept[#kept + 1] = order[i] end
kept[#kept + 1] = f
redis.call('HSET', h, f, ARGV[3], 'o', table.concat(kept, ' '))
if redis.call('PTTL', h) < tonumber(ARGV[4]) then redis.call('PEXPIRE', h, ARGV[4]) end
return 1
`)

// ErrStale reports a Set refused because the key was invalidated after its fetch began.
var ErrStale = errors.New("tiers: key invalidated while its fetch ran")

// Set stores e, one variant of the object under e.Key, in L2 then L1. e.Gen must be the object
// generation seen when the fetch began: if the key was invalidated since, Set stores nothing and
// returns ErrStale. Entries whose lifetime is already over are not stored. A Redis failure is
// returned (wrapped) after L1 was updated anyway, so this instance keeps serving.
func (s *Store) Set(ctx context.Context, e *Entry) error {
	now := time.Now()
	ttl := e.Expires().Sub(now)
	if ttl <= 0 {
		return nil // go-redis reads a zero expiration as "keep forever"
	}
	var l2err error
	if s.rdb != nil {
		l2err = s.setL2(ctx, e, ttl)
		if errors.Is(l2err, ErrStale) {
			s.l1.Invalidate(e.Key)
			return l2err
		}
	}
	stale := false
	s.l1.Compute(e.Key, s.indexed(e.Key, func(old *Object, found bool) (*Object, otter.ComputeOp) {
		if !found || old.Pass {
			return oneVariant(e.Key, e.Gen, e), otter.WriteOp
		}
		if old.Gen > e.Gen {
			stale = true
			return old, otter.CancelOp
		}
		return old.with(e, now, s.objectMax), otter.WriteOp
	}))
	if stale {
		return ErrStale
	}
	return l2err
}

func (s *Store) setL2(ctx context.Context, e *Entry, ttl time.Duration) error {
	if !s.br.allow() {
		return ErrL2Unavailable
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ms := max(ttl.Milliseconds(), 1)
	sent := time.Now()
	n, err := setScript.Run(ctx, s.rdb, []string{redisKey(e.Key)},
		e.Gen, variantField(e), encode(e), ms, maxVariants, s.objectMax).Int()
	s.observe(sent, err)
	if err != nil {
		return fmt.Errorf("tiers: l2 set %q: %w", e.Key, err)
	}
	if n == 0 {
		return ErrStale
	}
	return s.index(ctx, e, ttl)
}
