package tiers

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
)

// Tier says where a lookup found its object.
type Tier int

const (
	Miss Tier = iota
	L1
	L2
)

func (t Tier) String() string {
	switch t {
	case L1:
		return "l1"
	case L2:
		return "l2"
	}
	return "miss"
}

// KeyPrefix starts every Redis key swrproxy writes. The version changes with the codec.
const KeyPrefix = "swr:v1:"

// Options configure a Store.
type Options struct {
	L1MaxBytes int64         // L1 capacity, weighed by Object.Size
	L1MaxTTL   time.Duration // how long L1 trusts a copy without going back to L2
	// Redis is the L2; nil runs L1 only.
	Redis redis.UniversalClient
	// L2Timeout bounds every Redis call made on behalf of a request (default 250ms).
	L2Timeout time.Duration
	// Tombstone is how long a cleared key remembers its generation, so that a fetch that began
	// before the clear cannot store the old body afterwards (default 2m; make it longer than the
	// origin timeout).
	Tombstone time.Duration
	Log       *slog.Logger
}

// Store is the two-tier cache: L1 in process, L2 in Redis, shared by every instance.
// It is safe for concurrent use.
type Store struct {
	l1        *otter.Cache[string, *Object]
	rdb       redis.UniversalClient
	br        breaker
	l1MaxTTL  time.Duration
	timeout   time.Duration
	tombstone time.Duration
	log       *slog.Logger

	// OnL2Change, when set before Run, is called when the L2 circuit opens or closes.
	OnL2Change func(open bool)

	l2Errors atomic.Int64

	// fences remember, for a few seconds, when each key was last dropped by an invalidation;
	// fenceAll when the whole L1 was. See promote.
	fences   *otter.Cache[string, int64]
	fenceAll atomic.Int64
}

// New returns a Store. It does not contact Redis.
func New(o Options) (*Store, error) {
	if o.L1MaxBytes <= 0 {
		return nil, fmt.Errorf("tiers: l1 max bytes %d must be positive", o.L1MaxBytes)
	}
	if o.L1MaxTTL <= 0 {
		return nil, fmt.Errorf("tiers: l1 max ttl %v must be positive", o.L1MaxTTL)
	}
	s := &Store{
		rdb:       o.Redis,
		l1MaxTTL:  o.L1MaxTTL,
		timeout:   cmp(o.L2Timeout, 250*time.Millisecond),
		tombstone: cmp(o.Tombstone, 2*time.Minute),
		log:       o.Log,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.br.tripAfter = 3
	s.br.onChange = func(open bool) {
		if open {
			s.log.Warn("redis circuit open: serving from L1 and origin only")
		} else {
			// We may have missed invalidation messages while Redis was away.
			s.l1.InvalidateAll()
			s.log.Warn("redis circuit closed: L2 in use again; L1 dropped")
		}
		if s.OnL2Change != nil {
			s.OnL2Change(open)
		}
	}
	l1, err := otter.New(&otter.Options[string, *Object]{
		MaximumWeight: uint64(o.L1MaxBytes),
		Weigher: func(_ string, o *Object) uint32 {
			return uint32(min(o.size, 1<<31))
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *Object]) time.Duration {
			// otter never expires an entry created with a non-positive duration: expire it at once.
			return max(min(s.l1MaxTTL, time.Until(e.Value.expires)), 1)
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("tiers: new l1: %w", err)
	}
	s.l1 = l1
	s.fences, err = otter.New(&otter.Options[string, int64]{
		MaximumSize:      100_000,
		ExpiryCalculator: otter.ExpiryWriting[string, int64](10 * time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("tiers: new fences: %w", err)
	}
	return s, nil
}

func cmp(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Run probes Redis while its circuit is open and prunes the key index. It blocks until ctx is cancelled and returns nil.
func (s *Store) Run(ctx context.Context) error {
	if s.rdb != nil {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { // stops with ctx
			t := time.NewTicker(30 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					s.prune(ctx)
				}
			}
		})
		s.br.probe(ctx, s.rdb, 500*time.Millisecond, s.timeout)
	}
	<-ctx.Done()
	return nil
}

// HasL2 reports whether the store has a Redis tier configured.
func (s *Store) HasL2() bool { return s.rdb != nil }

// L2Open reports whether the Redis circuit is open (L2 skipped).
func (s *Store) L2Open() bool { return s.rdb != nil && !s.br.allow() }

// L2Errors returns how many Redis calls have failed since start.
func (s *Store) L2Errors() int64 { return s.l2Errors.Load() }

// L1Stats returns the number of L1 objects and their weight in bytes.
func (s *Store) L1Stats() (objects int, bytes uint64) {
	return s.l1.EstimatedSize(), s.l1.WeightedSize()
}

// Peek returns the L1 object for key, or nil. It never touches Redis and does not allocate:
// it is the hit path.
func (s *Store) Peek(key string) *Object {
	o, _ := s.l1.GetIfPresent(key)
	return o
}

// Get returns the object stored under key: from L1, else from L2 (and then copies it into L1 for
// at most L1MaxTTL). A miss is (nil, Miss, nil). A Redis failure returns (nil, Miss, err): callers
// log it and treat it as a miss. Corrupt L2 variants are dropped (and deleted from Redis), never served.
func (s *Store) Get(ctx context.Context, key string) (*Object, Tier, error) {
	if o, ok := s.l1.GetIfPresent(key); ok {
		return o, L1, nil
	}
	start := time.Now()
	o, err := s.getL2(ctx, key)
	if err != nil || o == nil {
		return nil, Miss, err
	}
	s.promote(key, o, start)
	return o, L2, nil
}

// promote copies an object read from L2 at start into L1, unless this instance was told to drop
// the key after the read began: the read may predate the invalidation, and L1 would then keep the
// old copy for up to L1MaxTTL.
func (s *Store) promote(key string, o *Object, start time.Time) {
	if fence, ok := s.fences.GetIfPresent(key); ok && fence >= start.UnixNano() {
		return
	}
	if all := s.fenceAll.Load(); all >= start.UnixNano() {
		return
	}
	s.l1.Set(key, o)
}

// GetL2 reads the object under key from Redis only, bypassing (and not touching) L1.
// Without Redis it returns L1's object.
func (s *Store) GetL2(ctx context.Context, key string) (*Object, error) {
	if s.rdb == nil {
		return s.Peek(key), nil
	}
	return s.getL2(ctx, key)
}

func (s *Store) getL2(ctx context.Context, key string) (*Object, error) {
	if s.rdb == nil {
		return nil, nil
	}
	if !s.br.allow() {
		return nil, ErrL2Unavailable
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rk := RedisKey(key)
	m, err := s.rdb.HGetAll(ctx, rk).Result()
	s.observe(err)
	if err != nil {
		return nil, fmt.Errorf("tiers: l2 get %q: %w", key, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	gen, _ := strconv.ParseUint(m["g"], 10, 64)
	var vs []*Entry
	var bad []string
	for f, v := range m {
		if !strings.HasPrefix(f, "v:") {
			continue
		}
		e, err := decode([]byte(v))
		if err == nil && e.Key != key {
			err = fmt.Errorf("%w: key %q stored under the hash of %q", ErrCorrupt, e.Key, key)
		}
		if err != nil {
			s.log.Warn("dropping corrupt L2 entry", "key", key, "field", strconv.Quote(f), "err", err)
			bad = append(bad, f)
			continue
		}
		vs = append(vs, e)
	}
	if len(bad) > 0 {
		if err := s.rdb.HDel(ctx, rk, bad...).Err(); err != nil {
			s.observe(err)
		}
	}
	if len(vs) == 0 && gen == 0 {
		return nil, nil // nothing usable and no generation to remember: a miss
	}
	o := newObject(key, gen, vs)
	if len(vs) == 0 {
		// A generation-only object (a tombstone): remember the generation briefly.
		o.expires = time.Now().Add(s.l1MaxTTL)
	}
	return o, nil
}

func (s *Store) observe(err error) {
	s.br.record(err)
	if err != nil && !errors.Is(err, redis.Nil) {
		s.l2Errors.Add(1)
	}
}

// setScript stores one variant unless the object's generation moved past the one the fetch began
// under (a clear or soft purge landed meanwhile), keeps at most ARGV[5] variants, and extends the
// hash's lifetime to cover the new variant. It returns 1 when stored, 0 when refused.
var setScript = redis.NewScript(`
local g = tonumber(redis.call('HGET', KEYS[1], 'g') or '0')
if g > tonumber(ARGV[1]) then return 0 end
if tonumber(ARGV[1]) > g then g = ARGV[1]; redis.call('HSET', KEYS[1], 'g', g) end
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 and redis.call('HLEN', KEYS[1]) > tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'g', g)
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
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
	s.l1.Compute(e.Key, func(old *Object, found bool) (*Object, otter.ComputeOp) {
		if !found {
			return newObject(e.Key, e.Gen, []*Entry{e}), otter.WriteOp
		}
		if old.Pass {
			return newObject(e.Key, e.Gen, []*Entry{e}), otter.WriteOp
		}
		if old.Gen > e.Gen {
			stale = true
			return old, otter.CancelOp
		}
		return old.with(e, now), otter.WriteOp
	})
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
	n, err := setScript.Run(ctx, s.rdb, []string{RedisKey(e.Key)},
		e.Gen, variantField(e), encode(e), ms, maxVariants).Int()
	s.observe(err)
	if err != nil {
		return fmt.Errorf("tiers: l2 set %q: %w", e.Key, err)
	}
	if n == 0 {
		return ErrStale
	}
	return s.index(ctx, e, ttl)
}

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
// (a soft purge) without removing it. Returns 1 when the key existed.
var staleScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'g', 1)
return 1
`)

// Delete clears key in both tiers of this instance (other instances' L1s are the caller's business:
// see Forget). In-flight fetches of the key can no longer store their result.
func (s *Store) Delete(ctx context.Context, key string) error {
	s.fences.Set(key, time.Now().UnixNano())
	s.l1.Compute(key, func(old *Object, found bool) (*Object, otter.ComputeOp) {
		var gen uint64
		if found {
			gen = old.Gen
		}
		t := newObject(key, gen+1, nil)
		t.expires = time.Now().Add(s.tombstone)
		return t, otter.WriteOp
	})
	if s.rdb == nil {
		return nil
	}
	if !s.br.allow() {
		return fmt.Errorf("tiers: l2 delete %q: %w", key, ErrL2Unavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := clearScript.Run(ctx, s.rdb, []string{RedisKey(key)}, s.tombstone.Milliseconds()).Err()
	s.observe(err)
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
	n, err := staleScript.Run(ctx, s.rdb, []string{RedisKey(key)}).Int()
	s.observe(err)
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

// RedisKey is the Redis key of a cache key: a hash, so no client text reaches key names, in a
// {hash tag} so that the object and its lock share a cluster slot.
func RedisKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return KeyPrefix + "{" + hex.EncodeToString(sum[:16]) + "}"
}

// unlockScript deletes a lock only if it still holds our token; extendScript renews it likewise.
var (
	unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)
	extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)
)

// Lock is a held cross-instance fetch lock. While held it is renewed every third of its TTL, so a
// slow origin never lets a second instance in, while a holder that dies frees the key within one TTL.
type Lock struct {
	stop chan struct{}
	done chan struct{}
}

// Unlock stops renewing the lock and releases it if it is still ours. Safe to call more than once
// and on a nil Lock.
func (l *Lock) Unlock() {
	if l == nil || l.stop == nil {
		return
	}
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// TryLock tries to take the cross-instance fetch lock of key for ttl. It reports whether this
// instance holds it; the caller must Unlock a held lock. Without Redis, or with Redis unavailable,
// every caller holds it (there is nobody to collapse with, or nobody who can tell), and err says why.
func (s *Store) TryLock(ctx context.Context, key string, ttl time.Duration) (*Lock, bool, error) {
	if s.rdb == nil {
		return nil, true, nil
	}
	if !s.br.allow() {
		return nil, true, ErrL2Unavailable
	}
	var tok [12]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	lk := RedisKey(key) + ":lock"
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	ok, err := s.rdb.SetNX(cctx, lk, token, ttl).Result()
	cancel()
	s.observe(err)
	if err != nil {
		return nil, true, fmt.Errorf("tiers: l2 lock %q: %w", key, err)
	}
	if !ok {
		return nil, false, nil
	}
	l := &Lock{stop: make(chan struct{}), done: make(chan struct{})}
	go func() { // stopped by Unlock
		defer close(l.done)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				uctx, cancel := context.WithTimeout(context.Background(), s.timeout)
				defer cancel()
				s.observe(unlockScript.Run(uctx, s.rdb, []string{lk}, token).Err())
				return
			case <-t.C:
				ectx, cancel := context.WithTimeout(context.Background(), s.timeout)
				s.observe(extendScript.Run(ectx, s.rdb, []string{lk}, token, ttl.Milliseconds()).Err())
				cancel()
			}
		}
	}()
	return l, true, nil
}

// Locked reports whether some instance holds the fetch lock of key. Errors read as false.
func (s *Store) Locked(ctx context.Context, key string) bool {
	if s.rdb == nil || !s.br.allow() {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := s.rdb.Exists(ctx, RedisKey(key)+":lock").Result()
	s.observe(err)
	return err == nil && n == 1
}

// Reload reads the object under key from L2 and replaces this instance's L1 copy with it (or drops
// the L1 copy when L2 has none). Without Redis it returns the L1 object.
func (s *Store) Reload(ctx context.Context, key string) (*Object, error) {
	if s.rdb == nil {
		return s.Peek(key), nil
	}
	start := time.Now()
	o, err := s.getL2(ctx, key)
	if err != nil {
		return nil, err
	}
	if o == nil {
		s.l1.Invalidate(key)
		return nil, nil
	}
	s.promote(key, o, start)
	return o, nil
}

// MarkPass records in L1 that key's responses are not cacheable, for ttl: lookups then send the
// request straight to the origin instead of queueing behind one another's fetch.
func (s *Store) MarkPass(key string, ttl time.Duration) {
	o := newObject(key, 0, nil)
	o.Pass = true
	o.expires = time.Now().Add(ttl)
	s.l1.Compute(key, func(old *Object, found bool) (*Object, otter.ComputeOp) {
		if found && (len(old.Variants) > 0 || old.Gen > 0) {
			return old, otter.CancelOp // a stored response or a recent invalidation wins
		}
		return o, otter.WriteOp
	})
}
