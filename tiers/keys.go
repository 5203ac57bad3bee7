package tiers

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Listing keys: by prefix (the Redis key index, or L1 without Redis), by tag, and one key's description.

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
		Min: min, Max: lexAfter(prefix), Offset: 0, Count: int64(limit + 1),
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

// KeyInfo describes one cached key for the keys listing.
type KeyInfo struct {
	Key         string
	Variants    int
	Bytes       int
	AgeSec      int64
	FreshForSec int64 // negative once stale
	Fresh       bool
	Tags        []string
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
		Key:         key,
		Variants:    len(o.Variants),
		Bytes:       o.Size(),
		AgeSec:      int64(age / time.Second),
		FreshForSec: int64((e.Fresh - age) / time.Second),
		Fresh:       age < e.Fresh && e.Gen >= o.Gen,
		Tags:        e.Tags,
	}, true
}

// lexAfter is the exclusive ZRANGEBYLEX bound just past every string that
// starts with prefix: the prefix with its trailing 0xff bytes dropped and its last byte
// incremented, or "+" when there is none ("" or all 0xff).
func lexAfter(prefix string) string {
	b := []byte(prefix)
	for len(b) > 0 && b[len(b)-1] == 0xff {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return "+"
	}
	b[len(b)-1]++
	return "(" + string(b)
}
