package tiers

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/maypok86/otter/v2"
)

// Keyed variants: a policy rule that keys on request fields (key.include_headers, a Wasm hook's
// key_add) adds lines after the target, "GET /a" becoming "GET /a\nX-Region: eu". Invalidating
// "GET /a" must clear those keys too, and the invalidation a client's POST causes (RFC 9111
// §4.4) must not cost a scan of the whole L1: the Store indexes the L1 keys that have lines by
// the part before the first "\n" (their base). The index holds the L1's own key strings, one
// map entry per keyed L1 object, and follows L1: an entry is added when a key with lines is
// written and removed when otter deletes it (invalidation, expiry, eviction).

// variantIndex maps a base to the L1 keys that extend it with lines. Its lock is a leaf: it is
// taken inside otter's per-key operations and never calls otter.
type variantIndex struct {
	mu sync.Mutex
	m  map[string]map[string]struct{}
}

// base returns the part of key before its lines, and whether it has any.
func base(key string) (string, bool) {
	i := strings.IndexByte(key, '\n')
	if i < 0 {
		return key, false
	}
	return key[:i], true
}

func (x *variantIndex) add(key string) {
	b, ok := base(key)
	if !ok {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = make(map[string]map[string]struct{})
	}
	set := x.m[b]
	if set == nil {
		set = make(map[string]struct{}, 1)
		x.m[b] = set
	}
	set[key] = struct{}{}
}

func (x *variantIndex) remove(key string) {
	b, ok := base(key)
	if !ok {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if set := x.m[b]; set != nil {
		delete(set, key)
		if len(set) == 0 {
			delete(x.m, b)
		}
	}
}

func (x *variantIndex) list(b string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	set := x.m[b]
	if len(set) == 0 {
		return nil
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// size returns the number of keys indexed.
func (x *variantIndex) size() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for _, set := range x.m {
		n += len(set)
	}
	return n
}

// indexed wraps an otter compute function so that a key it writes is indexed (under otter's
// lock of the key, so a deletion of the key cannot come between the write and the index).
func (s *Store) indexed(key string, fn func(old *Object, found bool) (*Object, otter.ComputeOp)) func(old *Object, found bool) (*Object, otter.ComputeOp) {
	return func(old *Object, found bool) (*Object, otter.ComputeOp) {
		o, op := fn(old, found)
		if op == otter.WriteOp {
			s.variants.add(key)
		}
		return o, op
	}
}

// unindex is L1's deletion handler: a key otter deletes leaves the index (a replacement keeps it).
func (s *Store) unindex(e otter.DeletionEvent[string, *Object]) {
	if e.Cause != otter.CauseReplacement {
		s.variants.remove(e.Key)
	}
}

// L1Variants returns this instance's L1 keys that extend key with lines (key itself excluded),
// in byte order. It costs a map lookup, whatever the size of L1.
func (s *Store) L1Variants(key string) []string {
	if b, has := base(key); has || b == "" {
		return nil
	}
	return s.variants.list(key)
}

// Variants returns the cache keys that extend key with lines, in both tiers: the Redis key index
// (a range of it, never a scan) and L1Variants. A Redis failure returns what L1 has and the error.
func (s *Store) Variants(ctx context.Context, key string) ([]string, error) {
	keys := s.L1Variants(key)
	if s.rdb == nil {
		return keys, nil
	}
	after := ""
	for {
		ks, more, err := s.KeysWithPrefix(ctx, key+"\n", after, 1000)
		if err != nil {
			return keys, err
		}
		for _, k := range ks {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		if !more || len(ks) == 0 {
			break
		}
		after = ks[len(ks)-1]
	}
	slices.Sort(keys)
	return keys, nil
}
