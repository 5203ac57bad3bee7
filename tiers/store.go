package tiers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/internal/redisclock"
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

// KeyPrefix starts every Redis key swrproxy writes. The version changes with the codec or the
// layout of what is stored (v2: variant fields are digests, and an order field; v4: stored
// content codings), so that instances of different versions sharing a Redis never read each
// other's data.
const KeyPrefix = "swr:v4:"

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
	// ObjectMaxBytes bounds the bytes of all the variants of one URL together, in L1 and in L2:
	// past it, the least recently stored variants go (the newest is always kept). So a client
	// cycling through the values of a Vary'd field cannot make one URL heavier than this, nor
	// every read of it from Redis longer. Default: L1MaxBytes/8, at most 16 MiB.
	ObjectMaxBytes int64
	Log            *slog.Logger
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
	objectMax int64
	log       *slog.Logger
	// shareMax bounds one MarkHot call, all its batches; zero means markHotMax (tests lower it).
	shareMax time.Duration
	// readSample: Peek records one L1 hit in readSample for L1's policy (defaultReadSample;
	// TestSampledReadsKeepL1sHitRatio compares others).
	readSample uint32

	// OnL2Change, when set before Run, is called when the L2 circuit opens or closes.
	OnL2Change func(open bool)

	l2Errors atomic.Int64

	// clock estimates Redis server time for lock calls; releasing counts background releases
	// of locks, releaseGate lets one of them at a time ask Redis while the circuit is open
	// (see lock.go).
	clock       redisclock.Clock
	releasing   atomic.Int64
	releaseGate atomic.Bool

	// fences remember, for a few seconds, when each key was last dropped by an invalidation;
	// fenceAll when the whole L1 was; fenceLost the latest fence evicted to stay within
	// fenceMaxBytes (promotions that began before it are refused, as for fenceAll). See promote.
	fences    *otter.Cache[string, int64]
	fenceAll  atomic.Int64
	fenceLost atomic.Int64

	variants variantIndex // the L1 keys with lines, by their base (variants.go)

	warmKeys, warmBytes, warmNanos atomic.Int64 // what Warm loaded, and how long the last took
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
		rdb:        o.Redis,
		l1MaxTTL:   o.L1MaxTTL,
		timeout:    orDefault(o.L2Timeout, 250*time.Millisecond),
		tombstone:  orDefault(o.Tombstone, 2*time.Minute),
		objectMax:  o.ObjectMaxBytes,
		log:        o.Log,
		readSample: defaultReadSample,
	}
	if s.objectMax <= 0 {
		s.objectMax = min(o.L1MaxBytes/8, 16<<20)
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
			return uint32(o.size)
		},
		OnAtomicDeletion: s.unindex,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *Object]) time.Duration {
			life := time.Until(e.Value.expiresAt())
			if s.rdb != nil {
				// L1 trusts a copy for L1MaxTTL at most, then reads L2 again (a lost coherence
				// message is forgotten then). Without L2 there is nothing else to read: a copy
				// lives its whole lifetime.
				life = min(s.l1MaxTTL, life)
			}
			// otter never expires an entry created with a non-positive duration: expire it at once.
			return max(life, 1)
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("tiers: new l1: %w", err)
	}
	s.l1 = l1
	s.fences, err = otter.New(&otter.Options[string, int64]{
		MaximumWeight: fenceMaxBytes,
		Weigher:       func(key string, _ int64) uint32 { return fenceWeight(key) },
		OnAtomicDeletion: func(e otter.DeletionEvent[string, int64]) {
			if e.Cause == otter.CauseOverflow {
				// Forgetting a fence early must not let an older read into L1: refuse every
				// promotion that began before the lost fence.
				for lost := s.fenceLost.Load(); e.Value > lost && !s.fenceLost.CompareAndSwap(lost, e.Value); {
					lost = s.fenceLost.Load()
				}
			}
		},
		ExpiryCalculator: otter.ExpiryWriting[string, int64](fenceTTL),
	})
	if err != nil {
		return nil, fmt.Errorf("tiers: new fences: %w", err)
	}
	return s, nil
}

// orDefault returns d, or def when d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Run probes Redis while its circuit is open and prunes the key index. It blocks until ctx is
// cancelled and returns nil.
func (s *Store) Run(ctx context.Context) error {
	if s.rdb != nil {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { every(ctx, 30*time.Second, func() { s.prune(ctx) }) })
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
// it is the hit path. One call in s.readSample, at random, counts as a read for L1's eviction
// policy (otter's W-TinyLFU: a frequency sketch and recency queues, fed through a lossy read
// buffer that a maintenance goroutine drains); the others read quietly. The policy needs the
// proportions of the keys' frequencies, not every read (otter, as Caffeine, already drops reads
// when its buffer is full; TestSampledReadsKeepL1sHitRatio), and the hit path is cheaper (the
// README's Performance section has the figures). The hit rate otter's hill climber compares
// when it sizes its window is then a sample too; only its large restarting steps come less
// often.
func (s *Store) Peek(key string) *Object {
	if s.readSample > 1 && rand.Uint32()%s.readSample != 0 {
		return s.PeekQuietly(key)
	}
	o, _ := s.l1.GetIfPresent(key)
	return o
}

// defaultReadSample is how many L1 hits Peek makes per read it records for L1's policy.
const defaultReadSample = 4

// PeekQuietly is Peek without counting as a read of key for L1's eviction policy (the refresh
// tracker clearing a memo slot is not demand).
func (s *Store) PeekQuietly(key string) *Object {
	e, _ := s.l1.GetEntryQuietly(key)
	return e.Value
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
	if all := max(s.fenceAll.Load(), s.fenceLost.Load()); all >= start.UnixNano() {
		return
	}
	s.l1.Compute(key, s.indexed(key, func(*Object, bool) (*Object, otter.ComputeOp) { return o, otter.WriteOp }))
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
	rk := redisKey(key)
	sent := time.Now()
	m, err := s.rdb.HGetAll(ctx, rk).Result()
	s.observe(sent, err)
	if err != nil {
		return nil, fmt.Errorf("tiers: l2 get %q: %w", key, err)
	}
	return s.objectOf(ctx, key, rk, m), nil
}

// objectOf decodes the L2 hash m of key (Redis key rk): corrupt variants are dropped, and
// deleted from Redis. It returns nil for a miss.
func (s *Store) objectOf(ctx context.Context, key, rk string, m map[string]string) *Object {
	if len(m) == 0 {
		return nil
	}
	gen, _ := strconv.ParseUint(m["g"], 10, 64)
	var vs []*Entry
	var bad []string
	for f, v := range m {
		if !strings.HasPrefix(f, variantPrefix) {
			continue
		}
		// decode views the value's bytes (they are immutable, as the string is): a copy of the
		// whole value would be garbage of the same size class as the copy kept, interleaved
		// with it, and half of each span would stay in use once the promotions were over;
		// compact copies what costs less apart. go-redis reads each bulk string of a reply
		// into an allocation of its own (proto.Reader's readStringReply), never a view of its
		// read buffer: TestAnHGETALLReplyIsAFreshStringOfItsOwn guards that.
		e, err := decode(unsafe.Slice(unsafe.StringData(v), len(v)))
		if err == nil && e.Key != key {
			err = fmt.Errorf("%w: key %q stored under the hash of %q", ErrCorrupt, e.Key, key)
		}
		if err == nil {
			e.Key = key // the same, and L1's own string: the tracker's memo and queued jobs keep e.Key
			compact(e, len(v))
		}
		if err != nil {
			s.log.Warn("dropping corrupt L2 entry", "key", key, "field", strconv.Quote(f), "err", err)
			bad = append(bad, f)
			continue
		}
		vs = append(vs, e)
	}
	if len(bad) > 0 {
		sent := time.Now()
		s.observe(sent, s.rdb.HDel(ctx, rk, bad...).Err())
	}
	if len(vs) == 0 && gen == 0 {
		return nil // nothing usable and no generation to remember: a miss
	}
	o := newObject(key, gen, vs)
	if len(vs) == 0 {
		// A generation-only object (a tombstone): remember the generation briefly.
		o.expires = time.Now().Add(s.l1MaxTTL).UnixNano()
	}
	return o
}

// observe notes the outcome of one Redis call sent at sent, for the breaker and the error count.
func (s *Store) observe(sent time.Time, err error) {
	s.br.record(err)
	if err != nil && !errors.Is(err, redis.Nil) {
		s.l2Errors.Add(1)
		// A call that waited its whole deadline (its context was made a moment before sent)
		// may mean a stalled Redis; one cut short by its caller's own deadline does not.
		if isTransportError(err) && time.Since(sent) >= s.timeout-s.timeout/8 {
			s.br.stalled(sent)
		}
	}
}

// redisKey is the Redis key of a cache key: a hash, so no client text reaches key names, in a
// {hash tag} so that the object and its lock share a cluster slot.
func redisKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return KeyPrefix + "{" + hex.EncodeToString(sum[:16]) + "}"
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
