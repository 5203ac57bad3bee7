// Command swrproxy is a stale-while-revalidate HTTP caching reverse proxy with an in-process L1
// (otter) and a Redis L2 shared by every instance. README.md says what it does, ARCHITECTURE.md where.
//
// main reads .env, the environment and the flags into a config, builds the parts (wire.go), runs
// them under one errgroup and shuts them down in order on SIGINT/SIGTERM. It holds no request logic.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/joho/godotenv"

	"github.com/swrproxy/swrproxy/admin"
	"github.com/swrproxy/swrproxy/config"
	"github.com/swrproxy/swrproxy/internal/ratelog"
	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/policy"
	"github.com/swrproxy/swrproxy/policy/wasm"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// version is the release swrproxy was built as: make build sets it with
// -ldflags "-X main.version=$(VERSION)".
var version = "dev"

// The wiring main relies on.
var (
	_ proxy.Store          = (*tiers.Store)(nil)
	_ proxy.Filler         = (*refresh.Filler)(nil)
	_ proxy.Refresher      = (*refresh.Pool)(nil)
	_ proxy.Tracker        = (*refresh.Tracker)(nil)
	_ proxy.Invalidator    = (*invalidate.Service)(nil)
	_ proxy.Origin         = (*upstream.Client)(nil)
	_ proxy.Policy         = (*policy.Holder)(nil)
	_ refresh.Store        = (*tiers.Store)(nil)
	_ refresh.Fetcher      = (*upstream.Client)(nil)
	_ refresh.Policy       = (*policy.Holder)(nil)
	_ invalidate.Store     = (*tiers.Store)(nil)
	_ invalidate.Refresher = (*refresh.Service)(nil)
	_ admin.Invalidator    = (*invalidate.Service)(nil)
	_ admin.Store          = (*tiers.Store)(nil)
	_ admin.Hits           = (*refresh.Tracker)(nil)
	_ admin.Pool           = (*upstream.Client)(nil)
	_ admin.Warmer         = (*tiers.Store)(nil)
	_ admin.Policy         = (*policy.Holder)(nil)
)

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

func realMain(args []string, stdout, stderr io.Writer) int {
	// .env fills in what the real environment does not set (godotenv never overrides).
	if err := godotenv.Load(); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "swrproxy: read .env: %v\n", err)
		return 2
	}
	cfg, err := config.LoadLookup(os.LookupEnv, args)
	switch {
	case errors.Is(err, config.ErrHelp):
		fmt.Fprint(stdout, err)
		return 0
	case errors.Is(err, config.ErrVersion):
		fmt.Fprintf(stdout, "swrproxy %s (%s)\n", version, commit(debug.ReadBuildInfo()))
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "swrproxy: bad configuration:\n%v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	if limit, derived := memoryLimit(cfg, os.Getenv("GOMEMLIMIT")); derived {
		debug.SetMemoryLimit(limit)
		log.Info("memory limit", "gomemlimit", limit, "from", "SWR_L1_MAX_BYTES")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("swrproxy stopped", "err", err)
		return 1
	}
	return 0
}

// commit returns the VCS revision the binary was built from (info, ok: debug.ReadBuildInfo), with
// "-dirty" when the tree had uncommitted changes, or "unknown" when the build did not record one
// (go build outside a checkout, or with -buildvcs=false).
func commit(info *debug.BuildInfo, ok bool) string {
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", ""
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision" && s.Value != "":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "unknown" {
		return rev
	}
	return rev + dirty
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

// memoryLimit is the Go heap's soft limit (GOMEMLIMIT) derived from the bounds of the
// configuration, unless the environment sets GOMEMLIMIT itself (env), in which case the runtime
// has it already and derived is false. What swrproxy keeps is bounded: L1 (SWR_L1_MAX_BYTES), the
// refresh tracker and queue (a quarter of L1), the fences, memo and marks (16 MiB), and a base
// (the runtime, Fiber, the clients, the Wasm runtime). The limit leaves half of L1 again for the
// garbage of the moment, so the GC works harder near it instead of letting the heap, and RSS,
// reach twice the live heap as GOGC=100 alone would.
func memoryLimit(cfg config.Config, env string) (limit int64, derived bool) {
	if env != "" {
		return 0, false
	}
	const base = 96 << 20
	limit = cfg.L1MaxBytes + cfg.L1MaxBytes/4 + cfg.L1MaxBytes/2 + 16<<20 + base
	if cfg.PolicyWasm != "" {
		pool := cfg.PolicyPool
		if pool == 0 {
			pool = runtime.GOMAXPROCS(0)
		}
		limit += int64(pool) * wasm.MaxMemoryBytes // each instance's memory, at most
	}
	return limit, true
}
