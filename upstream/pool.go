package upstream

import (
	"bytes"
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
	"slices"
	"strings"
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

// exchange is one exchange with b, counted in its in-flight requests (until the body is closed,
// by Do's releaser), its counters and latencies, and its passive health.
func (c *Client) exchange(ctx context.Context, b *backend, r *Request) (*http.Response, error) {
	var upload *watchedBody
	switch r.Body.(type) {
	case nil, *bytes.Reader, *strings.Reader, *bytes.Buffer:
		// In memory: reading cannot fail, and net/http can replay it on a stale connection.
	default:
		upload = &watchedBody{r: r.Body}
		sent := *r
		sent.Body = upload
		r = &sent
	}
	b.inflight.Add(1)
	start := time.Now()
	resp, err := c.send(ctx, b.url, r)
	now := time.Now()
	if err != nil {
		b.inflight.Add(-1)
		if upload != nil && upload.failed.Load() {
			// The client's upload broke (an aborted or short body): its failure, not the
			// backend's. Counted against b, it would let anyone take backends down at will.
			return nil, err
		}
		b.failed.Add(1)
		c.failed.Add(1)
		if ctx.Err() == nil && unreachable(err) {
			c.failure(b, now, true)
		}
		return nil, err
	}
	b.lat.observe(now, now.Sub(start))
	c.answered(b) // any answer, 5xx too, ends its run of failures on traffic (not its checks')
	if resp.StatusCode >= 500 {
		b.failed.Add(1)
		c.failed.Add(1)
	} else {
		b.success.Add(1)
		c.success.Add(1)
	}
	return resp, nil
}

// retryable reports whether a failed exchange of r may be sent again to another backend: r has
// no body, time is left, and either nothing reached the backend (the dial failed) or sending it
// twice changes nothing there.
func retryable(ctx context.Context, r *Request, err error) bool {
	if ctx.Err() != nil || (r.Body != nil && r.ContentLength != 0) {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// releaser runs done once, when the body is closed.
type releaser struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (r *releaser) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(r.done)
	return err
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

// apply makes ms the pool, keeping the state and counters of the backends that stay.
func (c *Client) apply(ms []member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applyLocked(ms)
}

// update changes this process's pool (without Redis) by edit, atomically.
func (c *Client) update(edit func(cur []member) ([]member, error)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	set := c.backends()
	cur := make([]member, len(set))
	for i, b := range set {
		cur[i] = member{URL: b.id, Source: b.source}
	}
	next, err := edit(cur)
	if err == nil {
		c.applyLocked(next)
	}
	return err
}

// current is the pool this instance holds, as members.
func (c *Client) current() []member {
	set := c.backends()
	ms := make([]member, len(set))
	for i, b := range set {
		ms[i] = member{URL: b.id, Source: b.source}
	}
	return ms
}

// applyLocked is apply with c.mu held. The list is kept in URL order, so that every instance
// goes round it alike. A list without one valid backend (a hand-edited hash in Redis) leaves
// the pool as it is; past MaxBackends, the first in URL order are kept.
func (c *Client) applyLocked(ms []member) {
	old := map[string]*backend{}
	if p := c.set.Load(); p != nil {
		for _, b := range *p {
			old[b.id] = b
		}
	}
	now := time.Now()
	ms = slices.SortedFunc(slices.Values(ms), func(a, b member) int { return cmp.Compare(a.URL, b.URL) })
	next := make([]*backend, 0, min(len(ms), MaxBackends))
	for _, m := range ms {
		if len(next) == MaxBackends {
			c.log.Warn("origin pool: the fleet's pool lists too many backends; using the first", "listed", len(ms), "used", MaxBackends)
			break
		}
		if b, ok := old[m.URL]; ok {
			if b != nil {
				next = append(next, b)
			}
			old[m.URL] = nil // taken (a repeated URL is one backend)
			continue
		}
		u, err := ParseBackend(m.URL)
		if err != nil || u.String() != m.URL {
			c.log.Warn("ignoring a bad backend of the fleet's pool", "url", m.URL, "err", err)
			continue
		}
		next = append(next, newBackend(u, m.Source, now))
		old[m.URL] = nil
		if c.set.Load() != nil {
			c.log.Info("backend added", "backend", m.URL, "source", m.Source)
		}
	}
	for id, b := range old {
		if b != nil {
			c.log.Info("backend removed", "backend", id)
		}
	}
	slices.SortFunc(next, func(a, b *backend) int { return cmp.Compare(a.id, b.id) })
	if p := c.set.Load(); p != nil && (len(next) == 0 || slices.Equal(*p, next)) {
		if len(next) == 0 {
			c.log.Warn("origin pool: the fleet's pool lists no valid backend; keeping this instance's")
		}
		return
	}
	c.set.Store(&next)
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

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

// Add adds the backend at raw (an http or https base URL) to the pool of the whole fleet. The
// error wraps ErrBadBackend (with the reason), ErrExists, ErrPoolFull or ErrPoolStore.
func (c *Client) Add(ctx context.Context, raw string) (Server, error) {
	u, err := ParseBackend(raw)
	if err != nil {
		return Server{}, fmt.Errorf("%w: %w", ErrBadBackend, err)
	}
	m := member{URL: u.String(), Source: SourceAPI}
	if c.members != nil {
		err := c.members.add(ctx, m)
		if errors.Is(err, ErrExists) {
			c.reload(ctx) // this instance may have missed it
		}
		if err != nil {
			return Server{}, err
		}
		c.reload(ctx)
	} else if err := c.update(func(cur []member) ([]member, error) { return added(cur, m) }); err != nil {
		return Server{}, err
	}
	for _, b := range c.backends() {
		if b.id == m.URL {
			return b.server(time.Now()), nil
		}
	}
	return Server{URL: m.URL, State: "up", Since: time.Now(), Source: SourceAPI}, nil
}

// Remove removes a backend from the pool of the whole fleet: target is its URL, or its
// "host:port" (which must name one backend). Requests in flight to it finish. It returns the
// URL removed; the error wraps ErrBadBackend, ErrNotFound, ErrAmbiguous, ErrLastBackend or
// ErrPoolStore.
func (c *Client) Remove(ctx context.Context, target string) (string, error) {
	if c.members != nil {
		list, err := c.members.load(ctx)
		if err != nil {
			return "", err
		}
		id, err := resolve(list, target)
		if err != nil {
			return "", err
		}
		if err := c.members.remove(ctx, id); err != nil {
			return "", err
		}
		c.reload(ctx)
		return id, nil
	}
	var id string
	err := c.update(func(cur []member) (next []member, err error) {
		if id, err = resolve(cur, target); err != nil {
			return nil, err
		}
		return removed(cur, id)
	})
	return id, err
}

// added is the pool cur with m added, or why it cannot be.
func added(cur []member, m member) ([]member, error) {
	for _, o := range cur {
		if o.URL == m.URL {
			return nil, ErrExists
		}
	}
	if len(cur) >= MaxBackends {
		return nil, ErrPoolFull
	}
	return append(cur, m), nil
}

// removed is the pool cur without the backend id, or why it cannot be.
func removed(cur []member, id string) ([]member, error) {
	next := slices.DeleteFunc(slices.Clone(cur), func(m member) bool { return m.URL == id })
	switch {
	case len(next) == len(cur):
		return nil, ErrNotFound
	case len(next) == 0:
		return nil, ErrLastBackend
	}
	return next, nil
}

// resolve finds the backend of list that target names: a URL, or a host:port.
func resolve(list []member, target string) (string, error) {
	var byURL string
	if u, err := ParseBackend(target); err == nil {
		byURL = u.String()
	} else if _, _, err := net.SplitHostPort(target); err != nil {
		return "", fmt.Errorf("%w: %q is neither a backend URL nor host:port", ErrBadBackend, target)
	}
	var found []string
	for _, m := range list {
		if m.URL == byURL {
			return m.URL, nil
		}
		if byURL == "" {
			// Host names are case-insensitive (RFC 3986 §3.2.2); the list's are lower case.
			if u, err := url.Parse(m.URL); err == nil && strings.EqualFold(hostPort(u), target) {
				found = append(found, m.URL)
			}
		}
	}
	switch len(found) {
	case 0:
		return "", ErrNotFound
	case 1:
		return found[0], nil
	}
	return "", ErrAmbiguous
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

// Sync loads the fleet's pool from Redis (seeding it with the environment's list when Redis has
// none). A failure is logged and the current pool kept: Run keeps trying. When the fleet's pool
// is not the environment's list, it says so: the fleet's wins, and an operator who changed
// SWR_UPSTREAM should know that it did nothing.
func (c *Client) Sync(ctx context.Context) {
	if c.members == nil {
		return
	}
	c.reload(ctx)
	var fleet []string
	for _, b := range c.backends() {
		fleet = append(fleet, b.id)
	}
	if !slices.Equal(fleet, c.env) {
		c.log.Warn("SWR_UPSTREAM differs from the fleet's pool in Redis (swr:pool:v1): using the fleet's; change it through /_swr/servers",
			"SWR_UPSTREAM", strings.Join(c.env, ","), "fleet", strings.Join(fleet, ","))
	}
}

// reload loads the fleet's pool and applies it, unless a load that began later was applied
// meanwhile (an Add's reload and the poll's may cross: the older must not win).
func (c *Client) reload(ctx context.Context) {
	seq := c.loads.Add(1)
	ms, err := c.members.load(ctx)
	if err != nil {
		c.log.Warn("origin pool: keeping the last known pool", "err", err)
		return
	}
	c.applyLoaded(seq, ms)
}

// applyLoaded applies ms, the result of the load numbered seq, unless a later one was applied.
func (c *Client) applyLoaded(seq uint64, ms []member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq < c.applied {
		return
	}
	c.applied = seq
	c.applyLocked(ms)
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

// watchedBody is a request body that records whether reading it failed (the client's upload
// broke), as opposed to the backend failing the exchange.
type watchedBody struct {
	r      io.Reader
	failed atomic.Bool // read by the exchange after the transport's goroutine is done with it
}

func (w *watchedBody) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && err != io.EOF {
		w.failed.Store(true)
	}
	return n, err
}

// unreachable reports whether err shows the backend itself unreachable: the connection could
// not be made (refused, no route, a dial timeout) or its TLS handshake failed. Those are the
// passive failures. A failure after the request was written (a reset, an EOF, a timeout waiting
// for the answer) is not: a request can cause it (a handler that panics, a firewall resetting on
// a signature, a slow report), and counting it would let any client take backends down at will
// (security review). A backend that accepts and then hangs is the active checks' to find.
func unreachable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var rh tls.RecordHeaderError
	var cv *tls.CertificateVerificationError
	var alert tls.AlertError
	if errors.As(err, &rh) || errors.As(err, &cv) || errors.As(err, &alert) {
		return true
	}
	return strings.Contains(err.Error(), "TLS handshake timeout")
}
