package tiers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Redis indexes that let invalidations select keys by prefix and by tag without scanning the
// keyspace. Each is written with commands that are atomic on their own (ZADD), so instances
// never lose each other's updates, and each expires: members of the key index are pruned when the
// entries they point at have expired (on every write for tag sets); each index key expires with its longest-lived member.
const (
	// idxKeys is a sorted set of every cache key, all with score 0, so ZRANGEBYLEX finds a prefix.
	idxKeys = KeyPrefix + "{idx}:keys"
	// idxExp scores the same members by expiry time (Unix ms), to prune idxKeys.
	idxExp = KeyPrefix + "{idx}:exp"
	// hotPrefix marks keys that clients asked for recently, on any instance.
	hotSuffix = ":hot"
)

func tagKey(tag string) string {
	sum := sha256.Sum256([]byte(tag))
	return KeyPrefix + "tag:{" + hex.EncodeToString(sum[:16]) + "}"
}

// index records e's key and tags in the Redis indexes. Failures are returned; the entry itself
// is stored already.
func (s *Store) index(ctx context.Context, e *Entry, ttl time.Duration) error {
	sent := time.Now()
	exp := sent.Add(ttl)
	secs := time.Duration(int64(ttl/time.Second)+1) * time.Second
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, idxKeys, redis.Z{Score: 0, Member: e.Key})
		p.ZAddArgs(ctx, idxExp, redis.ZAddArgs{GT: true, Members: []redis.Z{{Score: float64(exp.UnixMilli()), Member: e.Key}}})
		for _, k := range []string{idxKeys, idxExp} {
			p.ExpireNX(ctx, k, secs)
			p.ExpireGT(ctx, k, secs)
		}
		for _, t := range e.Tags {
			// A sorted set scored by expiry: members whose entries expired are pruned on
			// every write, so a long-lived tag does not collect every key it ever had.
			tk := tagKey(t)
			p.ZAddArgs(ctx, tk, redis.ZAddArgs{GT: true, Members: []redis.Z{{Score: float64(exp.UnixMilli()), Member: e.Key}}})
			p.ZRemRangeByScore(ctx, tk, "-inf", strconv.FormatInt(time.Now().UnixMilli(), 10))
			p.ExpireNX(ctx, tk, secs)
			p.ExpireGT(ctx, tk, secs)
		}
		return nil
	})
	s.observe(sent, err)
	if err != nil {
		return fmt.Errorf("tiers: l2 index %q: %w", e.Key, err)
	}
	return nil
}

// pruneScript removes from both key indexes up to ARGV[2] members whose entries expired before ARGV[1].
var pruneScript = redis.NewScript(`
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, k in ipairs(gone) do
  redis.call('ZREM', KEYS[1], k)
  redis.call('ZREM', KEYS[2], k)
end
return #gone
`)

// prune drops expired keys from the key index. It is run periodically by Run.
func (s *Store) prune(ctx context.Context) {
	if s.rdb == nil || !s.br.allow() {
		return
	}
	for range 100 { // at most 100k members per round
		pctx, cancel := context.WithTimeout(ctx, s.timeout*4)
		sent := time.Now()
		n, err := pruneScript.Run(pctx, s.rdb, []string{idxKeys, idxExp}, sent.UnixMilli(), 1000).Int()
		cancel()
		s.observe(sent, err)
		if err != nil || n < 1000 {
			return
		}
	}
}

// KeysWithPrefix returns up to limit cache keys that start with prefix, in byte order, starting
// after the key after (""= from the start), and whether more follow. It reads the Redis index;
// without Redis it lists this instance's L1.
func (s *Store) KeysWithPrefix(ctx context.Context, prefix, after string, limit int) ([]string, bool, error) {
	if s.rdb == nil {
		return s.l1Keys(prefix, after, limit), false, nil
	}
	if !s.br.allow() {
		return nil, false, ErrL2Unavailable
	}
	min := "[" + prefix
	if after != "" && after >= prefix {
		min = "(" + after
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout*4)
	defer cancel()
	sent := time.Now()
	keys, err := s.rdb.ZRangeByLex(ctx, idxKeys, &redis.ZRangeBy{
		Min: min, Max: "[" + prefix + "\xff", Offset: 0, Count: int64(limit + 1),
	}).Result()
	s.observe(sent, err)
	if err != nil {
		return nil, false, fmt.Errorf("tiers: l2 keys with prefix %q: %w", prefix, err)
	}
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	return keys, more, nil
}

func (s *Store) l1Keys(prefix, after string, limit int) []string {
	var keys []string
	for k, o := range s.l1.All() {
		if strings.HasPrefix(k, prefix) && k > after && len(o.Variants) > 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) > limit {
		keys = keys[:limit]
	}
	return keys
}

// KeysWithTag returns the cache keys stored with the Surrogate-Key tag. Without Redis it scans L1.
func (s *Store) KeysWithTag(ctx context.Context, tag string) ([]string, error) {
	if s.rdb == nil {
		return s.L1KeysWithTag(tag), nil
	}
	if !s.br.allow() {
		return nil, ErrL2Unavailable
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout*4)
	defer cancel()
	sent := time.Now()
	keys, err := s.rdb.ZRangeByScore(ctx, tagKey(tag), &redis.ZRangeBy{
		Min: strconv.FormatInt(time.Now().UnixMilli(), 10), Max: "+inf",
	}).Result()
	s.observe(sent, err)
	if err != nil {
		return nil, fmt.Errorf("tiers: l2 keys with tag %q: %w", tag, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// L1KeysWithTag returns the keys of this instance's L1 objects that carry tag.
func (s *Store) L1KeysWithTag(tag string) []string {
	var keys []string
	for k, o := range s.l1.All() {
		for _, e := range o.Variants {
			if slices.Contains(e.Tags, tag) {
				keys = append(keys, k)
				break
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// L1KeysWithPrefix returns the keys of this instance's L1 objects that start with prefix.
func (s *Store) L1KeysWithPrefix(prefix string) []string {
	return s.l1Keys(prefix, "", 1<<30)
}

// MarkHot records in Redis that clients asked for keys within the last window, so that any
// instance can tell hot keys from cold ones (invalidation mode auto).
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
		for _, k := range keys {
			p.Set(ctx, RedisKey(k)+hotSuffix, "1", window)
		}
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
	return s.exists(ctx, RedisKey(key)+hotSuffix)
}

// exists reports whether the Redis key rk exists. Without Redis, with its circuit open or on an
// error it reports false.
func (s *Store) exists(ctx context.Context, rk string) bool {
	if s.rdb == nil || !s.br.allow() {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	sent := time.Now()
	n, err := s.rdb.Exists(ctx, rk).Result()
	s.observe(sent, err)
	return err == nil && n == 1
}

// KeyInfo describes one cached key for the keys listing.
type KeyInfo struct {
	Key      string   `json:"key"`
	Variants int      `json:"variants"`
	Bytes    int      `json:"bytes"`
	AgeSec   int64    `json:"age_seconds"`
	TTLSec   int64    `json:"fresh_for_seconds"` // negative once stale
	Fresh    bool     `json:"fresh"`
	Tags     []string `json:"tags,omitempty"`
}

// Describe returns what is stored under key (from L1, else L2), or false when nothing is.
func (s *Store) Describe(ctx context.Context, key string, now time.Time) (KeyInfo, bool) {
	o := s.Peek(key)
	if o == nil || len(o.Variants) == 0 {
		var err error
		if o, err = s.GetL2(ctx, key); err != nil || o == nil || len(o.Variants) == 0 {
			return KeyInfo{}, false
		}
	}
	e := o.Variants[0]
	for _, v := range o.Variants[1:] {
		if v.Stored.After(e.Stored) {
			e = v
		}
	}
	age := e.CurrentAge(now)
	return KeyInfo{
		Key:      key,
		Variants: len(o.Variants),
		Bytes:    o.Size(),
		AgeSec:   int64(age / time.Second),
		TTLSec:   int64((e.Fresh - age) / time.Second),
		Fresh:    age < e.Fresh && e.Gen >= o.Gen,
		Tags:     e.Tags,
	}, true
}
