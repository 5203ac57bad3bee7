package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
	"github.com/tetratelabs/wazero"
	"golang.org/x/sync/errgroup"

	"github.com/swrproxy/swrproxy/admin"
	"github.com/swrproxy/swrproxy/config"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/internal/memtidy"
	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/metrics"
	"github.com/swrproxy/swrproxy/policy"
	"github.com/swrproxy/swrproxy/policy/wasm"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// listening is told the addresses run listens on, once it does (tests use port 0).
type listening func(proxyAddr, adminAddr string)

// run builds every part, listens, and serves until ctx is cancelled or a part fails; see serve.
func run(ctx context.Context, cfg config.Config, log *slog.Logger, ready listening) error {
	log.Info("starting swrproxy", "config", cfg)
	rdb, err := newRedis(cfg)
	if err != nil {
		return err
	}
	if rdb != nil {
		defer rdb.Close() // after serve: the loops are done with it
		if err := checkRedis(ctx, cfg, rdb, log); err != nil {
			return err
		}
	}
	sys, err := build(cfg, log, rdb)
	if err != nil {
		return err
	}
	defer signal.Stop(sys.hup)
	// The fleet's pool, before the first request (a restarted instance uses what the fleet uses).
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	sys.origin.Sync(sctx)
	cancel()
	// Warm start: the fleet's hot keys from L2 into L1 before the listeners open, so that the
	// first requests for them are L1 hits (bounded in bytes and time; the origin is never asked).
	if rdb != nil && cfg.WarmBytes > 0 {
		wctx, cancel := context.WithTimeout(ctx, admin.WarmLimit)
		start := time.Now()
		keys, bytes, err := sys.store.Warm(wctx, warmBudget(cfg))
		cancel()
		log.Info("warm start", "keys", keys, "bytes", bytes, "took", time.Since(start).Round(time.Millisecond), "err", err)
	}
	var lns []net.Listener
	for _, addr := range []string{cfg.Listen, cfg.AdminListen}[:len(sys.apps)] {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		lns = append(lns, proxy.KeepAccepting(ln, log)) // running out of descriptors must not end the process
	}
	proxyAddr, adminAddr := lns[0].Addr().String(), lns[len(lns)-1].Addr().String()
	if ready != nil {
		ready(proxyAddr, adminAddr)
	}
	log.Info("listening", "proxy", proxyAddr, "backends", len(sys.origin.Servers()), "healthy", sys.origin.Healthy())
	return sys.serve(ctx, lns, log)
}

// system is swrproxy's object graph, built whole before anything runs: the parts with
// background loops, and the apps of the listeners (the proxy's, then the admin listener's if any).
type system struct {
	store   *tiers.Store
	origin  *upstream.Client
	refresh *refresh.Service
	inv     *invalidate.Service
	policy  *policy.Holder
	admin   *admin.Admin
	hup     chan os.Signal // SIGHUP, from build until serve returns
	apps    []*fiber.App
}

// build constructs every part, each from the parts it needs, observers first.
func build(cfg config.Config, log *slog.Logger, rdb redis.UniversalClient) (*system, error) {
	store, err := tiers.New(tiers.Options{
		L1MaxBytes: cfg.L1MaxBytes,
		L1MaxTTL:   cfg.L1MaxTTL,
		Redis:      rdb,
		Tombstone:  cfg.UpstreamTimeout + time.Minute,
		Log:        log,
	})
	if err != nil {
		return nil, err
	}
	pol, err := policy.NewHolder(context.Background(), policy.Source{
		File: cfg.PolicyFile, Module: cfg.PolicyWasm, KeyHost: cfg.KeyHost,
		Wasm:  wasm.Options{Pool: cfg.PolicyPool, Timeout: cfg.PolicyTimeout, Cache: wasmCache},
		Grace: cfg.UpstreamTimeout + time.Minute,
	}, log)
	if err != nil {
		return nil, err
	}
	latency := metrics.NewOrigin()
	origin, err := newPool(cfg, log, rdb)
	if err != nil {
		return nil, err
	}
	ref := refresh.New(refresh.Options{
		Store:  store,
		Origin: origin,
		Defaults: httpcache.Defaults{
			TTL:                  cfg.DefaultTTL,
			StaleWhileRevalidate: cfg.StaleWhileRevalidate,
			StaleIfError:         cfg.StaleIfError,
		},
		MaxObjectBytes: cfg.MaxObjectBytes,
		Timeout:        cfg.UpstreamTimeout,
		Workers:        cfg.RefreshWorkers,
		Window:         cfg.RefreshWindow,
		L1MaxBytes:     cfg.L1MaxBytes,
		Log:            log,
		ObserveOrigin:  latency.Observe,
		Policy:         pol,
		Compress:       refresh.Compression{Codings: cfg.Compress, MinBytes: int(cfg.CompressMinBytes)},
	})
	var bus *invalidate.Bus
	if rdb != nil {
		bus = invalidate.NewBus(rdb, log)
	}
	inv := invalidate.New(store, ref, bus, log)
	handler := &proxy.Handler{
		Store:         store,
		Filler:        ref.Filler,
		Refresher:     ref.Pool,
		Tracker:       ref.Tracker,
		Invalidator:   inv,
		Origin:        origin,
		KeyHost:       cfg.KeyHost,
		Policy:        pol,
		Timeout:       cfg.UpstreamTimeout,
		AccessLog:     cfg.AccessLog,
		Log:           log,
		ObserveOrigin: latency.Observe,

		TrustedProxies: cfg.TrustedProxies,
	}
	src := metrics.Sources{
		Handler:    handler.Stats,
		Filler:     ref.Filler.Stats,
		Pool:       ref.Pool.Stats,
		Tracker:    ref.Tracker.Stats,
		Store:      store.Stats,
		Invalidate: inv.Stats,
		Upstream:   origin.Stats,
		Servers:    origin.Servers,
		Policy:     pol.Stats,
		Bus:        busStats(bus),
	}
	adm := admin.New(admin.Config{
		Secret:      cfg.InvalidateSecret,
		KeyHost:     cfg.KeyHost,
		Invalidator: inv,
		Store:       store,
		Hits:        ref.Tracker,
		Redis:       rdb,
		Pool:        origin,
		Policy:      pol,
		Metrics:     metrics.New(latency, src),
		Log:         log,
		Password:    cfg.AdminPassword,
		Warmer:      warmer(rdb, store),
		WarmBytes:   warmBudget(cfg),
	})
	sys := &system{store: store, origin: origin, refresh: ref, inv: inv, policy: pol, admin: adm, hup: make(chan os.Signal, 1)}
	// Before any listener serves: a SIGHUP from then on reloads the policy (one that came
	// before Notify would end the process, as SIGHUP does by default).
	signal.Notify(sys.hup, syscall.SIGHUP)
	if cfg.AdminListen == "" {
		sys.apps = []*fiber.App{proxy.NewApp(handler, adm.Mount)}
	} else {
		// Only liveness stays on the proxy listener (what nginx talks to); the rest of /_swr/ is
		// on the admin listener alone.
		sys.apps = []*fiber.App{proxy.NewApp(handler, adm.MountPublic), proxy.NewAdminApp(log, adm.Mount)}
	}
	return sys, nil
}

// newPool builds the origin's pool from the settings, loading the TLS files.
func newPool(cfg config.Config, log *slog.Logger, rdb redis.UniversalClient) (*upstream.Client, error) {
	tlsc, err := upstream.TLSConfig(upstream.TLSOptions{
		CAFile:             cfg.UpstreamCAFile,
		CertFile:           cfg.UpstreamClientCert,
		KeyFile:            cfg.UpstreamClientKey,
		ServerName:         cfg.UpstreamServerName,
		InsecureSkipVerify: cfg.UpstreamInsecureSkipVerify,
	})
	if err != nil {
		return nil, err
	}
	if cfg.UpstreamInsecureSkipVerify {
		log.Warn("SWR_UPSTREAM_INSECURE_SKIP_VERIFY is on: the certificates of https backends are NOT verified; anyone on the path to them can read and change every response. Never use this in production.")
	}
	return upstream.New(upstream.Options{
		Backends: cfg.Upstreams,
		Timeout:  cfg.UpstreamTimeout,
		Balance:  cfg.UpstreamBalance,
		Health: upstream.HealthOptions{
			Interval: cfg.HealthInterval,
			Path:     cfg.HealthPath,
			Timeout:  cfg.HealthTimeout,
			Fall:     cfg.HealthFall,
			Rise:     cfg.HealthRise,
		},
		TLS:  tlsc,
		Host: cfg.UpstreamHost,
		Budget: upstream.BudgetOptions{
			Local:   cfg.OriginMaxConcurrency,
			Fleet:   cfg.OriginFleetMaxConcurrency,
			MaxWait: cfg.OriginMaxWait,
		},
		Redis:      rdb,
		PoolSecret: cfg.InvalidateSecret,
		Instance:   instanceID(),
		Log:        log,
	})
}

// instanceID names this instance in its view of the pool: the host name (a container's id
// under Docker) and a random suffix, so that two processes on one host differ.
func instanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "swrproxy"
	}
	var b [3]byte
	rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// serve runs every background loop and listener under one errgroup until ctx is cancelled or one
// of them fails (returns an error, or returns at all before being told to stop). Then it stops in
// order: the listeners stop accepting and finish their in-flight requests (at most 10 s), then the
// loops stop (an in-flight request may still queue a refresh or wait for invalidation acks). It
// returns the first failure, nil after a clean stop.
func (s *system) serve(ctx context.Context, lns []net.Listener, log *slog.Logger) error {
	g, gctx := errgroup.WithContext(ctx)
	lctx, stopLoops := context.WithCancel(context.Background())
	defer stopLoops()
	loop := func(name string, run func(context.Context) error) {
		g.Go(func() error {
			err := run(lctx)
			if err == nil && lctx.Err() == nil {
				err = errors.New("stopped on its own")
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	loop("refresh", s.refresh.Run)
	loop("origin pool", s.origin.Run)
	loop("tiers", s.store.Run)
	loop("invalidation bus", s.inv.Run)
	loop("policy reload on SIGHUP", s.reloadOnHangup)
	loop("admin dashboard", s.admin.Run)
	loop("memory tidy", memtidy.Run)
	for i, app := range s.apps {
		g.Go(func() error {
			err := app.Listener(lns[i])
			if err == nil && gctx.Err() == nil {
				err = errors.New("stopped on its own")
			}
			if err != nil {
				return fmt.Errorf("listener %s: %w", lns[i].Addr(), err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done() // a signal, or a part failing
		if ctx.Err() != nil {
			log.Info("shutting down: finishing in-flight requests")
		} else {
			log.Error("shutting down: finishing in-flight requests", "reason", context.Cause(gctx))
		}
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var errs []error
		for _, app := range s.apps {
			errs = append(errs, app.ShutdownWithContext(sctx))
		}
		stopLoops()
		return errors.Join(errs...)
	})
	err := g.Wait()
	log.Info("stopped")
	return err
}

// reloadOnHangup reloads the policy on every SIGHUP until ctx is cancelled (a rejected one is
// logged by the holder, and the policy in force stays).
func (s *system) reloadOnHangup(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.hup:
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			s.policy.Reload(rctx) //nolint:errcheck // logged and counted by the holder
			cancel()
		}
	}
}

// busStats is the invalidation bus's snapshot function, nil without a bus (without Redis):
// metrics then leaves the bus's rows out.
func busStats(bus *invalidate.Bus) func() invalidate.BusStats {
	if bus == nil {
		return nil
	}
	return bus.Stats
}

// wasmCache keeps compiled policy modules between loads when set: the tests set it (compiling a
// Go module under the race detector takes tens of seconds); swrproxy itself leaves it nil, so
// reloads of ever new modules do not accumulate compiled code.
var wasmCache wazero.CompilationCache

// warmBudget is how much a warm-up loads: SWR_WARM_BYTES, at most the whole L1.
func warmBudget(cfg config.Config) int64 { return min(cfg.WarmBytes, cfg.L1MaxBytes) }

// warmer is what POST /_swr/populate warms from: the store, with Redis (without, there is no
// fleet hot set, and populate answers 404).
func warmer(rdb redis.UniversalClient, store *tiers.Store) admin.Warmer {
	if rdb == nil {
		return nil
	}
	return store
}
