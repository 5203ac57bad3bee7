// Command swrproxy is a stale-while-revalidate HTTP caching reverse proxy with an in-process L1
// (otter) and a Redis L2 shared by every instance. See README.md and ../shared/DESIGN.md.
//
// main reads .env, the environment and the flags into a config, wires the parts together, runs
// them under one errgroup and shuts them down in order on SIGINT/SIGTERM. It holds no request logic.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/joho/godotenv"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/swrproxy/swrproxy/config"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/internal/ratelog"
	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/metrics"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// The wiring main relies on.
var (
	_ proxy.Store          = (*tiers.Store)(nil)
	_ proxy.Filler         = (*refresh.Filler)(nil)
	_ proxy.Refresher      = (*refresh.Pool)(nil)
	_ proxy.Tracker        = (*refresh.Tracker)(nil)
	_ proxy.Invalidator    = (*invalidate.Handler)(nil)
	_ invalidate.Refresher = refresher{}
)

// refresher gives the invalidation endpoint the refresh work it orders.
type refresher struct {
	pool    *refresh.Pool
	filler  *refresh.Filler
	tracker *refresh.Tracker
}

func (r refresher) Refresh(e *tiers.Entry, gen uint64) bool { return r.pool.Refresh(e, gen) }
func (r refresher) Forget(key string)                       { r.filler.Forget(key) }
func (r refresher) Hot(key string) bool                     { return r.tracker.Hot(key) }
func (r refresher) Hits(key string) int64                   { return r.tracker.Hits(key) }

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

func realMain(args []string, stdout, stderr io.Writer) int {
	// .env fills in what the real environment does not set (godotenv never overrides).
	if err := godotenv.Load(); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "swrproxy: read .env: %v\n", err)
		return 2
	}
	cfg, err := config.LoadLookup(os.LookupEnv, args)
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprint(stdout, err)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "swrproxy: bad configuration:\n%v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("swrproxy stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// Warnings (origin failures, Redis breaker changes) at most once a second per message, so
	// an outage cannot flood the log; the next line says how many were held back.
	return slog.New(ratelog.New(h, time.Second))
}

// listening is told the addresses run listens on, once it does (tests use port 0).
type listening func(proxyAddr, adminAddr string)

// run starts every part and blocks until ctx is cancelled (or a part fails), then shuts down in
// order: stop accepting, let in-flight requests finish (at most 10s), stop the workers, close Redis.
func run(ctx context.Context, cfg config.Config, log *slog.Logger, ready listening) error {
	log.Info("starting swrproxy", "config", cfg)

	rdb, err := newRedis(cfg)
	if err != nil {
		return err
	}
	if rdb != nil {
		defer rdb.Close()
	}
	store, err := tiers.New(tiers.Options{
		L1MaxBytes: cfg.L1MaxBytes,
		L1MaxTTL:   cfg.L1MaxTTL,
		Redis:      rdb,
		Tombstone:  cfg.UpstreamTimeout + time.Minute,
		Log:        log,
	})
	if err != nil {
		return err
	}
	origin := upstream.New(cfg.Upstream, cfg.UpstreamTimeout)
	filler := &refresh.Filler{
		Store:  store,
		Origin: origin,
		Defaults: httpcache.Defaults{
			TTL:                  cfg.DefaultTTL,
			StaleWhileRevalidate: cfg.StaleWhileRevalidate,
			StaleIfError:         cfg.StaleIfError,
		},
		MaxObjectBytes: cfg.MaxObjectBytes,
		Timeout:        cfg.UpstreamTimeout,
		Log:            log,
		Stats:          &refresh.Stats{},
	}
	limits := refresh.LimitsFor(cfg.L1MaxBytes) // what refresh keeps outside L1 (README: Memory)
	pool := refresh.NewPool(filler, cfg.RefreshWorkers, limits.QueueJobs, cfg.UpstreamTimeout, log)
	pool.SetMaxBytes(limits.QueueBytes)
	tracker := &refresh.Tracker{Window: cfg.RefreshWindow, MaxBytes: limits.TrackerBytes, Pool: pool, Filler: filler, Store: store, Log: log}
	handler := &proxy.Handler{
		Store:     store,
		Filler:    filler,
		Refresher: pool,
		Tracker:   tracker,
		Origin:    origin,
		KeyHost:   cfg.KeyHost,
		Timeout:   cfg.UpstreamTimeout,
		AccessLog: cfg.AccessLog,
		Log:       log,

		TrustedProxies: cfg.TrustedProxies,
	}
	inv := &invalidate.Handler{
		Secret:    cfg.InvalidateSecret,
		Store:     store,
		Refresher: refresher{pool, filler, tracker},
		KeyHost:   cfg.KeyHost,
		Log:       log,
	}
	var bus *invalidate.Bus
	if rdb != nil {
		bus = invalidate.NewBus(rdb, inv.Drop, log)
		inv.Bus = bus
	}
	handler.Invalidator = inv
	inv.Stats = func() map[string]any { return statsOf(handler, filler, pool, tracker, store, bus) }
	mets := metrics.New(metrics.Sources{Handler: handler, Filler: filler, Pool: pool, Tracker: tracker, Store: store, Invalidate: inv, Bus: bus})
	filler.ObserveOrigin, handler.ObserveOrigin = mets.ObserveOrigin, mets.ObserveOrigin
	admin := &adminRoutes{store: store, rdb: rdb, upstream: cfg.Upstream, log: log}
	mount := func(r fiber.Router) {
		admin.mount(r)
		mets.Mount(r)
		inv.Mount(r)
	}

	var apps []*fiber.App
	var lns []net.Listener
	if cfg.AdminListen == "" {
		apps = append(apps, proxy.NewApp(handler, mount))
	} else {
		// Only liveness stays on the proxy listener (what nginx talks to); the rest of /_swr/ is
		// on the admin listener alone.
		apps = append(apps, proxy.NewApp(handler, admin.mountHealth), proxy.NewAdminApp(log, mount))
	}
	for _, addr := range []string{cfg.Listen, cfg.AdminListen}[:len(apps)] {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		lns = append(lns, ln)
	}
	if ready != nil {
		adminAddr := lns[0].Addr().String()
		if len(lns) > 1 {
			adminAddr = lns[1].Addr().String()
		}
		ready(lns[0].Addr().String(), adminAddr)
	}
	log.Info("listening", "proxy", lns[0].Addr().String(), "upstream", cfg.Upstream.Redacted())

	g, gctx := errgroup.WithContext(ctx)
	wctx, stopWorkers := context.WithCancel(context.Background())
	defer stopWorkers()
	var workers errgroup.Group
	workers.Go(func() error { return pool.Run(wctx) })
	workers.Go(func() error { return store.Run(wctx) })
	workers.Go(func() error { return tracker.Run(wctx) })
	if bus != nil {
		workers.Go(func() error { return bus.Run(wctx) })
	}
	for i, app := range apps {
		g.Go(func() error { return app.Listener(lns[i]) })
	}
	g.Go(func() error {
		<-gctx.Done() // a signal, or a listener failing
		log.Info("shutting down: finishing in-flight requests")
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var errs []error
		for _, app := range apps {
			errs = append(errs, app.ShutdownWithContext(sctx))
		}
		return errors.Join(errs...)
	})
	err = g.Wait()
	stopWorkers()
	workers.Wait()
	log.Info("stopped")
	return err
}

// newRedis returns the L2 client, or nil when SWR_REDIS_URL is empty. Timeouts are short on
// purpose: a slow Redis must cost a request at most one of them before the breaker opens. Nothing
// is retried, neither commands nor dials: a dead Redis fails a call at once, a stalled one after
// one deadline, and a call whose outcome is unknown (a SET NX that may have run) is never sent
// twice behind the caller's back; the breaker decides when to try again.
func newRedis(cfg config.Config) (redis.UniversalClient, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	const (
		dial = 500 * time.Millisecond
		rw   = 250 * time.Millisecond
		pool = 300 * time.Millisecond
		// go-redis reads MaxRetries -1 as "none" (0 as 3), but DialerRetries is the number of
		// dial attempts and reads 0 or less as 5 (100 ms apart): 1 is a single dial.
		retries = -1
		dials   = 1
	)
	if addrs := cfg.RedisAddrs(); len(addrs) > 1 {
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: addrs, DialTimeout: dial, ReadTimeout: rw, WriteTimeout: rw, PoolTimeout: pool,
			MaxRetries: retries, DialerRetries: dials, ContextTimeoutEnabled: true,
			// The cluster client retries failed commands on other nodes within MaxRedirects;
			// -1 turns that off too. A MOVED/ASK answer (resharding, failover) then fails its
			// one call and reloads the slot map; the map is also reloaded every 5 s of traffic
			// (instead of 60 s), so a failed-over master is not dialled for long.
			MaxRedirects: -1, ClusterStateReloadInterval: 5 * time.Second,
		}), nil
	} else if len(addrs) == 1 {
		return redis.NewClient(&redis.Options{
			Addr: addrs[0], DialTimeout: dial, ReadTimeout: rw, WriteTimeout: rw, PoolTimeout: pool,
			MaxRetries: retries, DialerRetries: dials, ContextTimeoutEnabled: true,
		}), nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("config: SWR_REDIS_URL: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = dial, rw, rw, pool
	opts.MaxRetries, opts.DialerRetries, opts.ContextTimeoutEnabled = retries, dials, true
	if opts.TLSConfig != nil && opts.TLSConfig.MinVersion == 0 {
		opts.TLSConfig.MinVersion = tls.VersionTLS12
	}
	return redis.NewClient(opts), nil
}

func init() {
	// go-redis logs dial failures on its own; the breaker already reports outages once.
	redis.SetLogger(quietRedisLogger{})
}

type quietRedisLogger struct{}

func (quietRedisLogger) Printf(context.Context, string, ...any) {}
