package refresh

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
)

// Store is what refresh needs of the cache (*tiers.Store): entries to read, store and delete,
// the cross-instance fetch lock, and the fleet's hot set.
type Store interface {
	Get(ctx context.Context, key string) (*tiers.Object, tiers.Tier, error)
	Reload(ctx context.Context, key string) (*tiers.Object, error)
	Set(ctx context.Context, e *tiers.Entry) error
	Delete(ctx context.Context, key string) error
	TryLock(ctx context.Context, key string, ttl time.Duration) (*tiers.Lock, bool, error)
	Locked(ctx context.Context, key string) bool
	MarkHot(ctx context.Context, keys []string, window time.Duration) error
}

// Options is what New builds the refresh side from.
type Options struct {
	Store  Store
	Origin Fetcher
	// Defaults are the lifetimes a response gets when it names none (SWR_DEFAULT_TTL, …).
	Defaults httpcache.Defaults
	// MaxObjectBytes bounds a stored body (SWR_MAX_OBJECT_BYTES).
	MaxObjectBytes int64
	// Timeout bounds one fill and one background job (SWR_UPSTREAM_TIMEOUT).
	Timeout time.Duration
	// Workers is the number of background fetches at once (SWR_REFRESH_WORKERS).
	Workers int
	// Window is how long a key stays hot after a request (SWR_REFRESH_WINDOW); 0 turns
	// refresh-ahead off.
	Window time.Duration
	// L1MaxBytes is the L1 size: the queue and the tracker each get an eighth of it (limitsFor).
	L1MaxBytes int64
	Log        *slog.Logger
	// ObserveOrigin, when set, is told how long each origin exchange took to its headers.
	ObserveOrigin func(kind string, d time.Duration)
	// Policy, when set, is the policy in force (SWR_POLICY_FILE, the Wasm hooks).
	Policy Policy
	// Compress is what fills store encoded (SWR_COMPRESS, SWR_COMPRESS_MIN_BYTES).
	Compress Compression
}

// Service is the refresh side, built whole: the Filler that proxy's misses call, the Pool that
// runs background fetches, and the Tracker that keeps hot keys warm. It also carries out the
// refresh work an invalidation orders (invalidate.Refresher).
type Service struct {
	Filler  *Filler
	Pool    *Pool
	Tracker *Tracker
}

// New returns the refresh side of o, its bounds derived from o.L1MaxBytes. Call Run to start its
// background work.
func New(o Options) *Service {
	f := &Filler{
		Store:          o.Store,
		Origin:         o.Origin,
		Defaults:       o.Defaults,
		MaxObjectBytes: o.MaxObjectBytes,
		Timeout:        o.Timeout,
		Log:            o.Log,
		ObserveOrigin:  o.ObserveOrigin,
		Policy:         o.Policy,
		Compress:       o.Compress,
	}
	lim := limitsFor(o.L1MaxBytes) // what refresh keeps outside L1 (README: Memory)
	p := newPool(f, o.Workers, lim.QueueJobs, o.Timeout, o.Log)
	p.setMaxBytes(lim.QueueBytes)
	t := &Tracker{Window: o.Window, MaxBytes: lim.TrackerBytes, Pool: p, Filler: f, Store: o.Store, Log: o.Log}
	return &Service{Filler: f, Pool: p, Tracker: t}
}

// Run runs the pool's workers and the tracker until ctx is cancelled, then returns nil once every
// running job has returned.
func (s *Service) Run(ctx context.Context) error {
	var g errgroup.Group
	g.Go(func() error { return s.Pool.Run(ctx) })
	g.Go(func() error { return s.Tracker.Run(ctx) })
	return g.Wait()
}

// Refresh queues a background fetch of the variant e under object generation gen; it reports
// false when the queue refused it.
func (s *Service) Refresh(e *tiers.Entry, gen uint64) bool { return s.Pool.Refresh(e, gen) }

// Forget makes the next fill of key start afresh instead of joining one in flight.
func (s *Service) Forget(key string) { s.Filler.Forget(key) }

// Hot reports whether this instance served key within the refresh window.
func (s *Service) Hot(key string) bool { return s.Tracker.Hot(key) }
