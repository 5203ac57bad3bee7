package tiers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
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
	// hotSuffix marks keys that clients asked for recently, on any instance.
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
