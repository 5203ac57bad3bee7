package upstream

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Balancing policies of SWR_UPSTREAM_BALANCE.
const (
	BalanceRoundRobin = "round_robin"
	BalanceLeastConn  = "least_conn"
	BalanceKeyHash    = "key_hash"
)

// MaxBackends bounds the pool (and so the memory of its counters and checks).
const MaxBackends = 64

// Errors of the pool. The ones that wrap ErrUnavailable mean that the origin cannot be asked
// now: the request path serves a stale copy or answers 503 with Retry-After, at once.
var (
	ErrAllDown     = fmt.Errorf("%w: every backend is down", ErrUnavailable)
	ErrBadBackend  = errors.New("upstream: bad backend URL")
	ErrExists      = errors.New("upstream: the backend is already in the pool")
	ErrNotFound    = errors.New("upstream: no such backend in the pool")
	ErrPoolFull    = fmt.Errorf("upstream: the pool holds at most %d backends", MaxBackends)
	ErrLastBackend = errors.New("upstream: the pool's last backend cannot be removed")
	ErrAmbiguous   = errors.New("upstream: several backends listen at that host and port; remove one by its url")
	// ErrPoolStore is wrapped by a membership change that could not reach Redis, where the
	// fleet's pool lives: nothing changed.
	ErrPoolStore = errors.New("upstream: the fleet's pool in Redis is unreachable")
)

// Options configure New.
type Options struct {
	// Backends is the environment's list (SWR_UPSTREAM), normalised by ParseBackend. With Redis
	// it seeds the fleet's pool when Redis holds none; the fleet's pool wins otherwise.
	Backends []*url.URL
	// Timeout bounds the dial, the TLS handshake and the wait for response headers.
	Timeout time.Duration
	Balance string // BalanceRoundRobin (also for ""), BalanceLeastConn or BalanceKeyHash
	Health  HealthOptions
	// TLS is the client configuration towards https backends (TLSConfig); nil = system roots.
	TLS *tls.Config
	// Host, when set, is the Host field sent to every backend instead of the backend's own.
	Host   string
	Budget BudgetOptions
	// Redis holds the fleet's budget, and the fleet's pool when PoolSecret is set; nil keeps
	// both in this process.
	Redis redis.UniversalClient
	// PoolSecret (SWR_INVALIDATE_SECRET) signs the members of the fleet's pool in Redis; a
	// member without a valid signature is ignored, so that writing Redis is not enough to send
	// traffic somewhere. Empty: the pool is this process's alone (the API that would change it
	// is off too).
	PoolSecret string
	Instance   string // this instance's id, shown with its view of the pool
	Log        *slog.Logger
}

// Client sends requests to the origin's pool of backends. It is safe for concurrent use.
type Client struct {
	hc  *http.Client
	tls *tls.Config
	// dialTimeout and headerTimeout bound doCodings as the transport bounds its exchanges.
	dialTimeout, headerTimeout time.Duration
	host                       string
	balance                    string
	health                     HealthOptions
	budget                     *budget
	members                    *members // nil without Redis
	instance                   string
	env                        []string // the environment's list, normalised and in URL order
	log                        *slog.Logger

	mu      sync.Mutex // serialises apply
	applied uint64     // the seq of the latest reload applied; guarded by mu
	loads   atomic.Uint64
	passive sync.Mutex // serialises the passive failures that take a backend down (see failure)
	set     atomic.Pointer[[]*backend]
	rr      atomic.Uint64
	changed chan struct{} // a membership change, for the health loops

	success, failed, unavailable, retries atomic.Uint64
}

// New returns a client of the pool of o.Backends (at least one). It does no I/O: Sync loads the
// fleet's pool from Redis and Run keeps it, the health checks and the budget's leases current.
func New(o Options) (*Client, error) {
	if len(o.Backends) == 0 {
		return nil, errors.New("upstream: no backend")
	}
	switch o.Balance {
	case "":
		o.Balance = BalanceRoundRobin
	case BalanceRoundRobin, BalanceLeastConn, BalanceKeyHash:
	default:
		return nil, fmt.Errorf("upstream: unknown balance %q", o.Balance)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Health.defaults()
	tlsc := o.TLS
	if tlsc == nil {
		tlsc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	dial := min(o.Timeout, 10*time.Second)
	tr := &http.Transport{
		Proxy: nil, // the origin is reached directly, never through HTTP_PROXY
		DialContext: (&net.Dialer{
			Timeout:   dial,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   dial,
		ResponseHeaderTimeout: o.Timeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass the origin's encoding through untouched
		// An origin's header block is read whole before anything else; 1 MiB bounds it (Go's
		// default is 10 MB) while leaving room for large cookies and policies.
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
		TLSClientConfig:        tlsc.Clone(),
	}
	o.Budget.Redis, o.Budget.Instance, o.Budget.Log = o.Redis, o.Instance, o.Log
	c := &Client{
		tls:           tlsc,
		dialTimeout:   dial,
		headerTimeout: o.Timeout,
		host:          o.Host,
		balance:       o.Balance,
		health:        o.Health,
		budget:        newBudget(o.Budget),
		instance:      o.Instance,
		log:           o.Log,
		changed:       make(chan struct{}, 1),
		hc: &http.Client{
			Transport: tr,
			// Redirects are the client's business: relay them.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	seed := make([]member, 0, len(o.Backends))
	for _, u := range o.Backends {
		n, err := ParseBackend(u.String())
		if err != nil {
			return nil, fmt.Errorf("upstream: backend %s: %w", u.Redacted(), err)
		}
		seed = append(seed, member{URL: n.String(), Source: SourceEnv})
	}
	c.apply(seed)
	for _, b := range c.backends() {
		c.env = append(c.env, b.id)
	}
	if o.Redis != nil && o.PoolSecret != "" {
		// A Redis that holds no pool (new, or restarted empty) is seeded with the pool this
		// instance holds: the environment's list at first, the fleet's once loaded, so that
		// backends added through the API survive a Redis restart.
		c.members = &members{rdb: o.Redis, seed: c.current, key: []byte(o.PoolSecret), log: o.Log}
	}
	return c, nil
}

// Request is one request for the origin, already copied out of the client's request.
type Request struct {
	Method string
	// URI is the origin-form request target (path and query) as the client sent it.
	URI string
	// Key is the request's cache key, the input of key_hash balancing ("" = URI).
	Key    string
	Header http.Header // end-to-end fields only (see RemoveHopByHop)
	Body   io.Reader   // nil for none
	// ContentLength is the body length, -1 when unknown (chunked).
	ContentLength int64
}

type backgroundKey struct{}

// Background marks ctx as the context of work no client waits for (refresh-ahead, stale
// revalidation): its origin requests yield the budget to clients' (see BudgetOptions).
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

func isBackground(ctx context.Context) bool { return ctx.Value(backgroundKey{}) != nil }

// Do sends r to a healthy backend chosen by the balancing policy and returns its response with
// the body unread; the caller must close it (which also frees the request's budget slot). ctx
// bounds the whole exchange, body included.
//
// A request without a body whose exchange failed without a response is sent once more to
// another healthy backend when nothing was sent (the connection was refused) or when the
// method is idempotent (GET, HEAD, OPTIONS). With no healthy backend, or no budget slot within
// its wait, it fails at once with an error wrapping ErrUnavailable. Errors are *Error.
func (c *Client) Do(ctx context.Context, r *Request) (*http.Response, error) {
	if !ValidTarget(r.URI) && !ValidTarget("/"+r.URI) {
		return nil, &Error{r.URI, fmt.Errorf("invalid request target %q", r.URI)}
	}
	if c.Healthy() == 0 {
		// Before the budget: with nothing up, a wait for a slot would be a wait for nothing.
		c.unavailable.Add(1)
		return nil, &Error{r.URI, ErrAllDown}
	}
	release, err := c.budget.acquire(ctx, isBackground(ctx))
	if err != nil {
		return nil, &Error{r.URI, err}
	}
	key := cmp.Or(r.Key, r.URI)
	var tried *backend
	for {
		b := c.pick(key, tried)
		if b == nil {
			release()
			if tried != nil {
				return nil, err // the failure of the one backend there was to try
			}
			c.unavailable.Add(1)
			return nil, &Error{r.URI, ErrAllDown}
		}
		if tried != nil {
			c.retries.Add(1) // counted once there is a backend to send it to
		}
		var resp *http.Response
		if resp, err = c.exchange(ctx, b, r); err == nil {
			// The budget bounds the origin's work on requests (the stampede after a purge is
			// one of requests), so a slot is free once the headers are in: a long download or
			// a stream must not hold it, or a few clients could hold the whole fleet's budget.
			// The request stays in b's in-flight count until its body is closed.
			release()
			resp.Body = &releaser{ReadCloser: resp.Body, done: func() { b.inflight.Add(-1) }}
			return resp, nil
		}
		if tried != nil || !retryable(ctx, r, err) {
			release()
			return nil, err
		}
		tried = b
	}
}

// pick returns the healthy backend for a request with key under the balancing policy, other
// than skip; nil when there is none.
func (c *Client) pick(key string, skip *backend) *backend {
	// The candidates, in the pool's order; a stack array, so no allocation per request.
	var buf [MaxBackends]*backend
	up := buf[:0]
	for _, b := range *c.set.Load() {
		if b != skip && b.up.Load() {
			up = append(up, b)
		}
	}
	n := len(up)
	if n == 0 {
		return nil
	}
	switch c.balance {
	case BalanceKeyHash:
		// Rendezvous hashing: the backend with the highest score for the key. A backend that
		// leaves (or goes down) moves only its own keys, each to its next-best backend.
		kh := hashString(key)
		best, top := up[0], mix64(kh^up[0].hash)
		for _, b := range up[1:] {
			if s := mix64(kh ^ b.hash); s > top {
				best, top = b, s
			}
		}
		return best
	case BalanceLeastConn:
		// Ties go round the candidates, as round_robin does.
		start := int(c.rr.Add(1) % uint64(n))
		best := up[start]
		for i := 1; i < n; i++ {
			if b := up[(start+i)%n]; b.inflight.Load() < best.inflight.Load() {
				best = b
			}
		}
		return best
	}
	// Round the candidates, not the whole pool: going round the pool and taking the next one
	// up would hand a down backend's turns to the one after it, which would then take twice
	// the share of the others.
	return up[c.rr.Add(1)%uint64(n)]
}

func (c *Client) backends() []*backend { return *c.set.Load() }

// Servers is this instance's view of the pool, in URL order.
func (c *Client) Servers() []Server {
	now := time.Now()
	set := c.backends()
	out := make([]Server, len(set))
	for i, b := range set {
		out[i] = b.server(now)
	}
	return out
}

// Instance is the id this instance shows with its view of the pool.
func (c *Client) Instance() string { return c.instance }

// Balance is the balancing policy.
func (c *Client) Balance() string { return c.balance }

// Healthy reports how many backends are up.
func (c *Client) Healthy() int {
	n := 0
	for _, b := range c.backends() {
		if b.up.Load() {
			n++
		}
	}
	return n
}

// Stats is a snapshot of the pool's counters.
type Stats struct {
	Backends int `json:"backends"`
	Up       int `json:"up"`
	// Success and Failed count exchanges with backends (weldr's "server" counts): a response
	// below 500, or none at all or a 5xx.
	Success uint64 `json:"success"`
	Failed  uint64 `json:"failed"`
	// Unavailable counts requests refused at once because no backend was up.
	Unavailable uint64 `json:"unavailable"`
	// Retries counts requests sent to a second backend after the first failed.
	Retries uint64      `json:"retries"`
	Budget  BudgetStats `json:"budget"`
}

// Stats returns the pool's counters now.
func (c *Client) Stats() Stats {
	return Stats{
		Backends: len(c.backends()), Up: c.Healthy(),
		Success: c.success.Load(), Failed: c.failed.Load(),
		Unavailable: c.unavailable.Load(), Retries: c.retries.Load(),
		Budget: c.budget.stats(),
	}
}

// Run runs the health checks, follows the fleet's pool in Redis and renews the budget's leases
// until ctx is cancelled; it returns nil.
func (c *Client) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { c.runHealth(ctx) })
	wg.Go(func() { c.budget.run(ctx) })
	if c.members != nil {
		wg.Go(func() { c.members.watch(ctx, func() { c.reload(ctx) }) })
	}
	wg.Wait()
	return nil
}
