package invalidate

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/swrproxy/swrproxy/tiers"
)

// Store is what the service needs of the tiers (*tiers.Store): the L2 copy of a key, removing or
// marking it stale, dropping L1 copies, and the indexes that expand a selection to keys.
type Store interface {
	HasL2() bool
	L2Open() bool
	GetL2(ctx context.Context, key string) (*tiers.Object, error)
	IsHot(ctx context.Context, key string) bool
	Delete(ctx context.Context, key string) error
	MarkStale(ctx context.Context, key string) (bool, error)
	Forget(key string)
	ForgetAll()
	KeysWithPrefix(ctx context.Context, prefix, after string, limit int) ([]string, bool, error)
	KeysWithTag(ctx context.Context, tag string) ([]string, error)
	L1KeysWithPrefix(prefix string) []string
	L1KeysWithTag(tag string) []string
	// Variants and L1Variants list the keys that extend a key with lines (a policy rule's keyed
	// request fields): an index lookup in each tier, never a scan.
	Variants(ctx context.Context, key string) ([]string, error)
	L1Variants(key string) []string
}

// Refresher does the refresh work an invalidation orders.
type Refresher interface {
	// Refresh queues a background fetch of the variant e of its key, under object generation gen.
	// It reports false when the queue refused it.
	Refresh(e *tiers.Entry, gen uint64) bool
	// Forget makes the next fetch of key start afresh instead of joining one in flight.
	Forget(key string)
	// Hot reports whether this instance served key within the refresh window.
	Hot(key string) bool
}

// Service carries out invalidations: it selects the keys, clears or refreshes them in both tiers,
// and tells every instance to drop its L1 copies. Safe for concurrent use.
type Service struct {
	store     Store
	refresher Refresher
	bus       *Bus // nil without Redis: only this instance is invalidated
	log       *slog.Logger
	// ackWait bounds how long Apply waits for the other instances' acknowledgements.
	ackWait time.Duration

	requests, cleared, refreshed atomic.Int64
}

// New returns a service over store and r that fans out through bus (nil without Redis). Call Run
// to take part in the other instances' invalidations.
func New(store Store, r Refresher, bus *Bus, log *slog.Logger) *Service {
	return &Service{store: store, refresher: r, bus: bus, log: log, ackWait: 2 * time.Second}
}

// Run applies the other instances' invalidations to this one until ctx is cancelled, then
// returns nil. Without a bus it just waits for ctx.
func (s *Service) Run(ctx context.Context) error {
	if s.bus == nil {
		<-ctx.Done()
		return nil
	}
	return s.bus.run(ctx, s.Drop)
}

// Result is the reply of an invalidation.
type Result struct {
	Mode         Mode `json:"mode"`
	Matched      int  `json:"matched"`      // selected keys that were cached
	Cleared      int  `json:"cleared"`      // keys removed
	Refreshing   int  `json:"refreshing"`   // variants queued for a background fetch
	Instances    int  `json:"instances"`    // live instances (this one included)
	Acknowledged int  `json:"acknowledged"` // instances that dropped their L1 copies
	Complete     bool `json:"complete"`     // every live instance acknowledged
}

// Apply carries out an invalidation on both tiers and every instance's L1, and waits (at most
// 2 s) for the acknowledgements. The returned error reports a partial failure (Redis trouble);
// the result says what was done.
func (s *Service) Apply(ctx context.Context, req Request) (Result, error) {
	return s.apply(ctx, req, s.ackWait)
}

// Invalidate clears key on every instance: the cached GET of a URL after a successful unsafe
// request to it (RFC 9111 §4.4).
// It does not wait for the other instances' acknowledgements: the write's reply should not.
func (s *Service) Invalidate(ctx context.Context, key string) {
	if _, err := s.apply(ctx, Request{Keys: []string{key}, Mode: Clear}, 0); err != nil {
		s.log.Warn("invalidation after a write incomplete", "key", key, "err", err)
	}
}

func (s *Service) apply(ctx context.Context, req Request, wait time.Duration) (Result, error) {
	s.requests.Add(1)
	res := Result{Mode: req.Mode}
	keys, err := s.selectKeys(ctx, req)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	// Drop in-flight collapses first, so nothing started before now is joined afterwards.
	for _, k := range keys {
		s.refresher.Forget(k)
	}
	for _, k := range keys {
		o, err := s.store.GetL2(ctx, k)
		if err != nil {
			errs = append(errs, err)
		}
		cached := o != nil && len(o.Variants) > 0
		if cached {
			res.Matched++
		}
		mode := req.Mode
		if mode == Auto {
			mode = Clear
			if cached && (s.refresher.Hot(k) || s.store.IsHot(ctx, k)) {
				mode = Refresh
			}
		}
		if mode == Clear || !cached {
			if err := s.store.Delete(ctx, k); err != nil {
				errs = append(errs, err)
			}
			if cached {
				res.Cleared++
				s.cleared.Add(1)
			}
			continue
		}
		if _, err := s.store.MarkStale(ctx, k); err != nil {
			errs = append(errs, err)
		}
		if o2, err := s.store.GetL2(ctx, k); err == nil && o2 != nil {
			o = o2
		} else if err == nil {
			continue
		}
		for _, e := range o.Variants {
			if s.refresher.Refresh(e, o.Gen) {
				res.Refreshing++
			}
		}
		s.refreshed.Add(1)
	}

	// Every instance (this one included) drops its L1 copies of the selection. The message names
	// the prefixes and tags rather than the keys they expand to: each instance finds its own
	// copies, and the message stays small whatever the selection.
	msg := Message{Keys: req.Keys, Prefixes: req.Prefixes, Tags: req.Tags, All: req.All}
	if s.store.HasL2() {
		// L2 holds the truth now; without it, the L1 operations above were the whole job.
		s.Drop(msg)
	}
	res.Instances, res.Acknowledged = 1, 1
	switch {
	case s.bus == nil:
	case s.store.L2Open():
		errs = append(errs, errors.New("invalidate: publish: redis unavailable, other instances were not told"))
		res.Instances = 0
	default:
		live, acked, err := s.bus.Publish(ctx, msg, wait)
		if err != nil {
			errs = append(errs, err)
			live = 0
		}
		res.Instances, res.Acknowledged = live, acked
	}
	res.Complete = len(errs) == 0 && res.Acknowledged >= res.Instances
	return res, errors.Join(errs...)
}

// Drop applies a coherence message to this instance: its L1 copies of the selection go, and
// in-flight fetches of the keys are no longer joined.
func (s *Service) Drop(m Message) {
	if m.All {
		s.store.ForgetAll()
		return
	}
	keys := append([]string(nil), m.Keys...)
	for _, k := range m.Keys {
		keys = append(keys, s.store.L1Variants(k)...)
	}
	for _, p := range m.Prefixes {
		keys = append(keys, s.store.L1KeysWithPrefix(p)...)
	}
	for _, t := range m.Tags {
		keys = append(keys, s.store.L1KeysWithTag(t)...)
	}
	for _, k := range keys {
		s.store.Forget(k)
		s.refresher.Forget(k)
	}
}

// selectKeys resolves a selection to cache keys through the Redis indexes (or L1 without Redis).
func (s *Service) selectKeys(ctx context.Context, req Request) ([]string, error) {
	seen := map[string]bool{}
	var keys []string
	add := func(ks ...string) {
		for _, k := range ks {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	add(req.Keys...)
	var errs []error
	for _, k := range req.Keys {
		// A key names its target whatever fields a policy rule keys on (its keyed variants),
		// whichever policy the instance that stored them had.
		ks, err := s.store.Variants(ctx, k)
		if err != nil {
			errs = append(errs, err)
		}
		add(ks...)
	}
	prefixes := req.Prefixes
	if req.All {
		prefixes = []string{""}
	}
	for _, p := range prefixes {
		after := ""
		for {
			ks, more, err := s.store.KeysWithPrefix(ctx, p, after, 1000)
			if err != nil {
				errs = append(errs, err)
				break
			}
			add(ks...)
			if !more || len(ks) == 0 {
				break
			}
			after = ks[len(ks)-1]
		}
		add(s.store.L1KeysWithPrefix(p)...)
	}
	for _, t := range req.Tags {
		ks, err := s.store.KeysWithTag(ctx, t)
		if err != nil {
			errs = append(errs, err)
		}
		add(ks...)
		add(s.store.L1KeysWithTag(t)...)
	}
	return keys, errors.Join(errs...)
}
