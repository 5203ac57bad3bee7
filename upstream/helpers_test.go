package upstream

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// testHealthPath is the health path of the pools of these tests.
const testHealthPath = "/health"

// testBackend is a real httptest origin of a pool. It names itself in the X-Backend field of
// every answer and counts its hits (health checks apart). Its health path answers 503 while
// sick is set. GET /drop closes the connection without an answer (a reset, after the request
// was sent), or only on the backend named by its query's "on"; GET /hold sends the header block at once and the body's end only when release is
// closed (or the client goes away).
type testBackend struct {
	name    string
	srv     *httptest.Server
	url     string // normalised, as the pool names it
	hits    atomic.Int64
	checks  atomic.Int64
	sick    atomic.Bool
	release chan struct{}
	once    sync.Once
}

// unblock lets every GET /hold of b, present and future, finish.
func (b *testBackend) unblock() { b.once.Do(func() { close(b.release) }) }

func startBackend(t *testing.T, name string) *testBackend {
	t.Helper()
	b := &testBackend{name: name, release: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == testHealthPath {
			b.checks.Add(1)
			if b.sick.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		b.hits.Add(1)
		w.Header().Set("X-Backend", name)
		switch r.URL.Path {
		case "/drop":
			if on := r.URL.Query().Get("on"); on != "" && on != name {
				break
			}
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		case "/hold":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-b.release:
			case <-r.Context().Done():
			}
		case "/500":
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, name)
	}))
	t.Cleanup(b.srv.Close)
	t.Cleanup(b.unblock) // runs first: Close waits for the handlers
	b.url = normalised(t, b.srv.URL)
	return b
}

// startBackends starts n backends named a, b, c…
func startBackends(t *testing.T, n int) []*testBackend {
	t.Helper()
	bs := make([]*testBackend, n)
	for i := range bs {
		bs[i] = startBackend(t, string(rune('a'+i)))
	}
	return bs
}

func normalised(t *testing.T, raw string) string {
	t.Helper()
	u, err := ParseBackend(raw)
	if err != nil {
		t.Fatalf("ParseBackend(%q): %v", raw, err)
	}
	return u.String()
}

// refusing returns the URL of a loopback port where nothing listens: every dial is refused.
func refusing(t *testing.T) string {
	t.Helper()
	return "http://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
}

// urls are the URLs of bs.
func urls(bs ...*testBackend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.url
	}
	return out
}

// newPool returns a client of the pool of raw. Unset options get test values: a 2 s timeout, the
// health path testHealthPath, and checks every hour (so that only the tests' own checks run).
func newPool(t *testing.T, o Options, raw ...string) *Client {
	t.Helper()
	for _, r := range raw {
		u, err := url.Parse(r)
		if err != nil {
			t.Fatalf("parse %q: %v", r, err)
		}
		o.Backends = append(o.Backends, u)
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Health.Path == "" {
		o.Health.Path = testHealthPath
	}
	if o.Health.Interval == 0 {
		o.Health.Interval = time.Hour
	}
	if o.Health.Timeout == 0 {
		o.Health.Timeout = time.Second
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.hc.CloseIdleConnections)
	return c
}

// runPool runs c.Run until the test ends, then checks that it returns nil within a second.
func runPool(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5s of its context's end")
		}
	})
}

// fetch sends one request through c and returns the name of the backend that answered (its
// body read and closed), or the error.
func fetch(c *Client, r *Request) (string, error) {
	resp, err := c.Do(context.Background(), r)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return "", err
	}
	return resp.Header.Get("X-Backend"), nil
}

// mustFetch is fetch of GET uri with key, failing the test on error.
func mustFetch(t *testing.T, c *Client, key, uri string) string {
	t.Helper()
	name, err := fetch(c, &Request{Method: http.MethodGet, URI: uri, Key: key})
	if err != nil {
		t.Fatalf("GET %s (key %q): %v", uri, key, err)
	}
	return name
}

// open sends GET uri with key through c and returns the response, its body open until the
// test closes it (or the test ends).
func open(t *testing.T, c *Client, key, uri string) *http.Response {
	t.Helper()
	resp, err := c.Do(context.Background(), &Request{Method: http.MethodGet, URI: uri, Key: key})
	if err != nil {
		t.Fatalf("GET %s (key %q): %v", uri, key, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// member returns c's backend of URL id (nil if none).
func (c *Client) member(id string) *backend {
	for _, b := range c.backends() {
		if b.id == id {
			return b
		}
	}
	return nil
}

// server returns c's view of the backend of URL id, failing the test if there is none.
func server(t *testing.T, c *Client, id string) Server {
	t.Helper()
	for _, s := range c.Servers() {
		if s.URL == id {
			return s
		}
	}
	t.Fatalf("no backend %s in %v", id, ids(c))
	return Server{}
}

// ids are the URLs of c's pool, in order.
func ids(c *Client) []string {
	var out []string
	for _, s := range c.Servers() {
		out = append(out, s.URL)
	}
	return out
}

// keyOn returns a key whose key_hash choice in c is the backend id, while every backend is up.
func keyOn(t *testing.T, c *Client, id string) string {
	t.Helper()
	for i := range 10000 {
		k := "/key/" + strconv.Itoa(i)
		if b := c.pick(k, nil); b != nil && b.id == id {
			return k
		}
	}
	t.Fatalf("no key of 10000 goes to %s", id)
	return ""
}

// markDown takes b down as its failed checks would (Fall of them).
func markDown(t *testing.T, c *Client, id string) {
	t.Helper()
	b := c.member(id)
	for range c.health.Fall {
		c.failure(b, time.Now(), false)
	}
	if b.up.Load() {
		t.Fatalf("%s still up after %d failed checks", id, c.health.Fall)
	}
}

// idle checks that c holds no budget slot and no backend counts a request in flight.
func idle(t *testing.T, c *Client) {
	t.Helper()
	if n := c.Stats().Budget.InUse; n != 0 {
		t.Errorf("budget slots in use = %d, want 0", n)
	}
	for _, s := range c.Servers() {
		if s.InFlight != 0 {
			t.Errorf("%s: in flight = %d, want 0", s.URL, s.InFlight)
		}
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// client returns production's client of srv (redisconn: short timeouts, no retries, and
// context deadlines honoured on the socket, which the budget relies on).
func client(t *testing.T, srv redistest.Topology) redis.UniversalClient { return srv.Connect(t) }

// mustAcquire acquires a slot of b, failing the test on error.
func mustAcquire(t *testing.T, b *budget, background bool) func() {
	t.Helper()
	release, err := b.acquire(t.Context(), background)
	if err != nil {
		t.Fatalf("acquire(background=%v) = %v", background, err)
	}
	return release
}

// holders counts concurrently held slots and remembers the most ever held at once.
type holders struct{ now, peak atomic.Int64 }

func (h *holders) hold(d time.Duration) {
	n := h.now.Add(1)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	time.Sleep(d) // overlap the holders; the cap, not the timing, bounds the peak
	h.now.Add(-1)
}

// acquireAll runs n acquisitions spread over budgets, each holding its slot for a moment, and
// returns the errors.
func acquireAll(n int, h *holders, budgets ...*budget) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			release, err := budgets[i%len(budgets)].acquire(context.Background(), false)
			if err != nil {
				errs[i] = err
				return
			}
			h.hold(2 * time.Millisecond)
			release()
		})
	}
	wg.Wait()
	return errs
}

// instance returns one instance's client of the fleet's pool in srv, its environment's list env.
func instance(t *testing.T, srv redistest.Topology, name string, env ...string) *Client {
	t.Helper()
	return newPool(t, Options{Redis: client(t, srv), PoolSecret: testPoolSecret, Instance: name}, env...)
}

// testPoolSecret signs the members of the tests' fleet pools.
const testPoolSecret = "0123456789abcdef0123456789abcdef"

// signed is a member as an instance with testPoolSecret writes it.
func signed(url, source string) string {
	m := &members{key: []byte(testPoolSecret)}
	return string(m.encode(member{URL: url, Source: source, Added: time.Now()}))
}

// stored is the fleet's pool in Redis: URL → member.
func stored(t *testing.T, rdb redis.UniversalClient) map[string]member {
	t.Helper()
	h, err := rdb.HGetAll(context.Background(), poolKey).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", poolKey, err)
	}
	out := map[string]member{}
	for k, v := range h {
		var m member
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			t.Fatalf("member %s = %q: %v", k, v, err)
		}
		m.URL = k
		out[k] = m
	}
	return out
}

// subscribed waits until n instances listen to the pool's channel.
func subscribed(t *testing.T, rdb redis.UniversalClient, n int64) {
	t.Helper()
	testenv.WaitFor(t, 2*time.Second, "the instances to subscribe", func() bool {
		m, err := rdb.PubSubNumSub(context.Background(), poolChannel).Result()
		return err == nil && m[poolChannel] == n
	})
}

func storedURLs(t *testing.T, rdb redis.UniversalClient) []string {
	t.Helper()
	var out []string
	for k := range stored(t, rdb) {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// newOrigin starts a real httptest origin serving h until the test ends.
func newOrigin(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newClient returns a client of base (the origin's URL plus an optional path).
func newClient(t *testing.T, base string, timeout time.Duration) *Client {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %q: %v", base, err)
	}
	c, err := New(Options{Backends: []*url.URL{u}, Timeout: timeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// get sends a GET of uri through c, failing the test on error. The body is closed when the test ends.
func get(t *testing.T, c *Client, uri string, h http.Header) *http.Response {
	t.Helper()
	resp, err := c.Do(t.Context(), &Request{Method: http.MethodGet, URI: uri, Header: h})
	if err != nil {
		t.Fatalf("Do(GET %s): %v", uri, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
