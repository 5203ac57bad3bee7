// Command origin is the demo origin of the docker-compose deployment: a deliberately slow JSON
// price API behind swrproxy. It uses only the standard library.
//
//	GET  /api/prices?pair=ALGO-USD      one price (404 for an unknown pair)
//	GET  /api/prices                    every price
//	POST /admin/edit?pair=X&price=Y     set a price, then ask swrproxy to invalidate it
//	GET  /healthz                       200 "ok"
//
// Prices drift a little every tick (10s by default), so a poller sees new values without anyone
// editing. Every price answer carries Cache-Control (fresh 5s, stale-while-revalidate 30s), a
// strong ETag computed from the body (If-None-Match gets a 304), and Surrogate-Key tags ("prices"
// and "pair-X") that swrproxy stores and can invalidate by.
//
// /admin/edit is unauthenticated: this is a demo, do not expose it in front of real data.
//
// Settings, as flags or environment variables (the flag wins):
//
//	-listen        ORIGIN_LISTEN          listen address (default ":9000")
//	-delay         ORIGIN_DELAY           simulated slowness of every price answer (default 300ms)
//	-tick          ORIGIN_TICK            how often prices drift (default 10s)
//	-swr-admin-url SWR_ADMIN_URL          where swrproxy's /_swr/ endpoints are (default http://swrproxy:9901, its SWR_ADMIN_LISTEN)
//	               SWR_INVALIDATE_SECRET  Bearer token for POST /_swr/invalidate (environment only)
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], os.Getenv, log); err != nil {
		log.Error("origin stopped", "err", err)
		os.Exit(1)
	}
}

// config is what run needs; parseConfig reads it from flags and the environment.
type config struct {
	listen   string
	delay    time.Duration
	tick     time.Duration
	adminURL string
	secret   string
}

func parseConfig(args []string, getenv func(string) string) (config, error) {
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("origin", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", env("ORIGIN_LISTEN", ":9000"), "listen address")
	delay := fs.String("delay", env("ORIGIN_DELAY", "300ms"), "simulated slowness of every price answer")
	tick := fs.String("tick", env("ORIGIN_TICK", "10s"), "how often prices drift")
	adminURL := fs.String("swr-admin-url", env("SWR_ADMIN_URL", "http://swrproxy:9901"), "base URL of swrproxy's /_swr/ endpoints")
	if err := fs.Parse(args); err != nil {
		return config{}, fmt.Errorf("origin: %w", err)
	}
	c := config{listen: *listen, adminURL: strings.TrimRight(*adminURL, "/"), secret: getenv("SWR_INVALIDATE_SECRET")}
	var err error
	if c.delay, err = time.ParseDuration(*delay); err != nil || c.delay < 0 {
		return config{}, fmt.Errorf("origin: ORIGIN_DELAY=%q: want a duration like 300ms", *delay)
	}
	if c.tick, err = time.ParseDuration(*tick); err != nil || c.tick <= 0 {
		return config{}, fmt.Errorf("origin: ORIGIN_TICK=%q: want a positive duration like 10s", *tick)
	}
	if !strings.HasPrefix(c.adminURL, "http://") && !strings.HasPrefix(c.adminURL, "https://") {
		return config{}, fmt.Errorf("origin: SWR_ADMIN_URL=%q: want an http:// or https:// URL", *adminURL)
	}
	return c, nil
}

// run serves until ctx is cancelled, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, log *slog.Logger) error {
	c, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}
	if c.secret == "" {
		log.Warn("SWR_INVALIDATE_SECRET is empty: swrproxy will refuse the invalidations /admin/edit sends")
	}
	s := newServer(c, log)
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("origin: listen on %s: %w", c.listen, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	log.Info("demo origin listening", "addr", ln.Addr().String(), "delay", c.delay, "tick", c.tick, "swr_admin_url", c.adminURL)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// server holds the prices. It is safe for concurrent use.
type server struct {
	config
	log    *slog.Logger
	client *http.Client
	now    func() time.Time
	mux    *http.ServeMux

	mu     sync.Mutex
	prices map[string]*price // by pair, e.g. "ALGO-USD"
}

// price is a pair's price as last set; the quoted value drifts from base every tick after setAt.
type price struct {
	base    float64
	setAt   time.Time
	version int // bumped by every edit
}

func newServer(c config, log *slog.Logger) *server {
	s := &server{
		config: c,
		log:    log,
		client: &http.Client{Timeout: 5 * time.Second},
		now:    time.Now,
		mux:    http.NewServeMux(),
	}
	start := s.now()
	s.prices = map[string]*price{
		"ALGO-USD": {base: 0.1834, setAt: start, version: 1},
		"BTC-USD":  {base: 64210.5, setAt: start, version: 1},
		"ETH-USD":  {base: 3120.25, setAt: start, version: 1},
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	// swrproxy's default health check (SWR_HEALTH_PATH=/) must get a 2xx, or after three checks
	// the demo's only backend is marked down and every miss is answered 503.
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "swrproxy demo origin: GET /api/prices?pair=BTC-USD\n")
	})
	s.mux.HandleFunc("GET /api/prices", s.getPrices)
	s.mux.HandleFunc("POST /admin/edit", s.edit)
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// quote is one price as the API shows it.
type quote struct {
	Pair    string  `json:"pair"`
	Price   float64 `json:"price"`
	Version int     `json:"version"` // edits of this pair since the origin started
	Tick    int64   `json:"tick"`    // drifts since the last edit
	AsOf    string  `json:"as_of"`   // when this value became current
}

// quoteAt returns the pair's price at t. It depends only on the stored price and the tick number,
// so every fetch within one tick gets the same body and the same ETag. Call with s.mu held.
func (s *server) quoteAt(pair string, p *price, t time.Time) quote {
	n := max(int64(t.Sub(p.setAt)/s.tick), 0)
	v := p.base * (1 + 0.02*math.Sin(float64(n))) // exactly base right after an edit
	return quote{
		Pair:    pair,
		Price:   math.Round(v*1e4) / 1e4,
		Version: p.version,
		Tick:    n,
		AsOf:    p.setAt.Add(time.Duration(n) * s.tick).UTC().Format(time.RFC3339),
	}
}

var pairPattern = regexp.MustCompile(`^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$`)

// pairParam returns the normalised pair of the request, "" when it has none, or ok false.
func pairParam(r *http.Request) (pair string, ok bool) {
	pair = strings.ToUpper(strings.TrimSpace(r.FormValue("pair")))
	return pair, pair == "" || pairPattern.MatchString(pair)
}

func (s *server) getPrices(w http.ResponseWriter, r *http.Request) {
	pair, ok := pairParam(r)
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "pair must look like ALGO-USD"})
		return
	}
	// The slow part of a real origin: a database, another API, a report.
	select {
	case <-time.After(s.delay):
	case <-r.Context().Done():
		return
	}

	status, tags := http.StatusOK, []string{"prices"}
	var body any
	s.mu.Lock()
	now := s.now()
	if pair == "" {
		all := make([]quote, 0, len(s.prices))
		for _, name := range slices.Sorted(maps.Keys(s.prices)) {
			all = append(all, s.quoteAt(name, s.prices[name], now))
			tags = append(tags, "pair-"+name)
		}
		body = map[string]any{"prices": all}
	} else if p := s.prices[pair]; p != nil {
		body = s.quoteAt(pair, p, now)
		tags = append(tags, "pair-"+pair)
	} else {
		// Tagged too, so that creating the pair with /admin/edit clears the cached 404.
		status, body = http.StatusNotFound, map[string]string{"error": "unknown pair " + pair}
		tags = append(tags, "pair-"+pair)
	}
	s.mu.Unlock()

	b, _ := json.Marshal(body)
	b = append(b, '\n')
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	h := w.Header()
	h.Set("Cache-Control", "public, max-age=5, stale-while-revalidate=30")
	h.Set("Surrogate-Key", strings.Join(tags, " "))
	h.Set("ETag", etag)
	if status == http.StatusOK && noneMatch(r.Header.Get("If-None-Match"), etag) {
		s.log.Info("origin hit", "uri", r.URL.RequestURI(), "status", http.StatusNotModified)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.log.Info("origin hit", "uri", r.URL.RequestURI(), "status", status)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// noneMatch reports whether the If-None-Match value inm matches etag by weak comparison
// (RFC 9110 §13.1.2). Good enough for a demo: it splits on commas.
func noneMatch(inm, etag string) bool {
	for t := range strings.SplitSeq(inm, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// edit sets a price (creating the pair if needed) and asks swrproxy to invalidate everything
// tagged with the pair. It answers with swrproxy's reply.
func (s *server) edit(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	pair, ok := pairParam(r)
	if !ok || pair == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "pair must look like ALGO-USD"})
		return
	}
	v, err := strconv.ParseFloat(r.FormValue("price"), 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "price must be a positive number"})
		return
	}
	s.mu.Lock()
	p := s.prices[pair]
	if p == nil {
		p = &price{}
		s.prices[pair] = p
	}
	p.base, p.setAt, p.version = v, s.now(), p.version+1
	version := p.version
	s.mu.Unlock()
	s.log.Info("price edited", "pair", pair, "price", v, "version", version)

	status, reply, err := s.invalidate(r.Context(), "pair-"+pair)
	if err != nil {
		s.log.Warn("invalidation failed", "pair", pair, "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]any{"edited": pair, "error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(reply)
}

// invalidate sends POST /_swr/invalidate for one tag and returns swrproxy's status and body.
func (s *server) invalidate(ctx context.Context, tag string) (int, []byte, error) {
	body, _ := json.Marshal(struct {
		Tags []string `json:"tags"`
		Mode string   `json:"mode"` // auto: refresh the keys clients still poll, clear the rest
	}{[]string{tag}, "auto"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.adminURL+"/_swr/invalidate", bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("invalidate %s: %w", tag, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.secret)
	res, err := s.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("invalidate %s: %w", tag, err)
	}
	defer res.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("invalidate %s: read reply: %w", tag, err)
	}
	if len(reply) == 0 {
		reply = []byte("{}\n")
	}
	return res.StatusCode, reply, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v) // only maps of strings: cannot fail
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
