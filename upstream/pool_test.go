package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

func TestRoundRobinSpreadsEvenlyOverThreeBackends(t *testing.T) {
	bs := startBackends(t, 3)
	c := newPool(t, Options{}, urls(bs...)...)
	for range 300 {
		mustFetch(t, c, "", "/x")
	}
	for _, b := range bs {
		if n := b.hits.Load(); n != 100 {
			t.Errorf("backend %s: %d of 300 requests, want 100", b.name, n)
		}
	}
	if st := c.Stats(); st.Success != 300 || st.Failed != 0 || st.Backends != 3 || st.Up != 3 {
		t.Errorf("Stats = %+v, want 300 successes of 3 backends up", st)
	}
}

// With a backend down, its share must be spread over the others, not handed to the one after
// it in the list (which would then take twice the load of the rest).
func TestTheShareOfADownBackendIsSpreadEvenly(t *testing.T) {
	for _, balance := range []string{BalanceRoundRobin, BalanceLeastConn} {
		t.Run(balance, func(t *testing.T) {
			bs := startBackends(t, 4)
			c := newPool(t, Options{Balance: balance}, urls(bs...)...)
			markDown(t, c, c.backends()[1].id) // the second in the pool's order
			for range 300 {
				mustFetch(t, c, "", "/x")
			}
			for _, b := range bs {
				n := b.hits.Load()
				if c.member(b.url).up.Load() && n != 100 {
					t.Errorf("backend %s (up): %d of 300 requests, want 100", b.name, n)
				}
				if !c.member(b.url).up.Load() && n != 0 {
					t.Errorf("backend %s (down): %d requests, want 0", b.name, n)
				}
			}
		})
	}
}

func TestLeastConnPrefersTheBackendWithFewerInFlight(t *testing.T) {
	bs := startBackends(t, 3)
	c := newPool(t, Options{Balance: BalanceLeastConn}, urls(bs...)...)
	first := open(t, c, "", "/hold")
	second := open(t, c, "", "/hold")
	busy := []string{first.Header.Get("X-Backend"), second.Header.Get("X-Backend")}
	if busy[0] == busy[1] {
		t.Fatalf("two requests held open on %s, want them on two backends", busy[0])
	}
	for range 20 {
		if got := mustFetch(t, c, "", "/x"); slices.Contains(busy, got) {
			t.Fatalf("a request went to %s, which holds one in flight, while another backend held none", got)
		}
	}
	for _, b := range bs {
		want := int64(0)
		if slices.Contains(busy, b.name) {
			want = 1
		}
		if s := server(t, c, b.url); s.InFlight != want {
			t.Errorf("%s: in flight = %d, want %d", b.name, s.InFlight, want)
		}
	}
	first.Body.Close()
	second.Body.Close()
	idle(t, c)
}

// keys are n distinct cache keys.
func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("GET /item/%d?v=%d", i, i*7)
	}
	return out
}

// placement maps each key to the id of its key_hash backend in c.
func placement(c *Client, ks []string) map[string]string {
	out := make(map[string]string, len(ks))
	for _, k := range ks {
		if b := c.pick(k, nil); b != nil {
			out[k] = b.id
		}
	}
	return out
}

func TestKeyHashSendsAKeyToTheSameBackendAlways(t *testing.T) {
	bs := startBackends(t, 3)
	c := newPool(t, Options{Balance: BalanceKeyHash}, urls(bs...)...)
	seen := map[string]bool{}
	for _, k := range keys(60) {
		first := mustFetch(t, c, k, "/x")
		seen[first] = true
		for range 3 {
			if got := mustFetch(t, c, k, "/x"); got != first {
				t.Fatalf("key %q went to %s, then to %s", k, first, got)
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("60 keys went to %d backends, want all 3", len(seen))
	}
	// Without a key, the request target is the key.
	first := mustFetch(t, c, "", "/target")
	for range 5 {
		if got := mustFetch(t, c, "", "/target"); got != first {
			t.Fatalf("GET /target went to %s, then to %s", first, got)
		}
	}
	if got := mustFetch(t, c, "/target", "/other"); got != first {
		t.Errorf("key /target went to %s, want %s, where GET /target goes", got, first)
	}
}

func TestKeyHashSpreadsKeysOverEveryBackend(t *testing.T) {
	bs := startBackends(t, 3)
	c := newPool(t, Options{Balance: BalanceKeyHash}, urls(bs...)...)
	ks := keys(3000)
	count := map[string]int{}
	for _, id := range placement(c, ks) {
		count[id]++
	}
	for _, b := range bs {
		if n := count[b.url]; n < 600 || n > 1410 {
			t.Errorf("%s holds %d of 3000 keys (%.1f%%), want 20%%–47%%", b.url, n, float64(n)/30)
		}
	}
}

func TestRemovingABackendMovesOnlyItsKeys(t *testing.T) {
	bs := startBackends(t, 3)
	c := newPool(t, Options{Balance: BalanceKeyHash}, urls(bs...)...)
	ks := keys(3000)
	before := placement(c, ks)
	gone := bs[1].url
	if _, err := c.Remove(t.Context(), gone); err != nil {
		t.Fatalf("Remove(%s): %v", gone, err)
	}
	after := placement(c, ks)
	moved := map[string]int{}
	for _, k := range ks {
		switch {
		case before[k] != gone && after[k] != before[k]:
			t.Fatalf("key %q moved from %s to %s, though its backend stayed", k, before[k], after[k])
		case before[k] == gone:
			moved[after[k]]++
		}
	}
	if len(moved) != 2 || moved[gone] != 0 {
		t.Errorf("the removed backend's keys went to %v, want both others", moved)
	}
	// A backend that is down moves its keys the same way, and gets them back when it is up.
	markDown(t, c, bs[0].url)
	for _, k := range ks {
		if b := c.pick(k, nil); after[k] != bs[0].url && b.id != after[k] {
			t.Fatalf("key %q moved from %s to %s when another backend went down", k, after[k], b.id)
		}
	}
	for range c.health.Rise {
		c.passed(c.member(bs[0].url), time.Now())
	}
	if got := placement(c, ks); !mapsEqual(got, after) {
		t.Error("the keys did not come back to the backend that came back up")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Two instances of the fleet, listing the same backends in different orders, send every key
// to the same backend: key_hash is what makes their caches of one key share one origin.
func TestTwoInstancesAgreeOnEveryKey(t *testing.T) {
	bs := startBackends(t, 3)
	a := newPool(t, Options{Balance: BalanceKeyHash}, urls(bs...)...)
	b := newPool(t, Options{Balance: BalanceKeyHash}, bs[2].url, bs[0].url+"/", strings.ToUpper(bs[1].url[:4])+bs[1].url[4:])
	ks := keys(3000)
	pa, pb := placement(a, ks), placement(b, ks)
	for _, k := range ks {
		if pa[k] != pb[k] {
			t.Fatalf("key %q: instance a sends it to %s, instance b to %s", k, pa[k], pb[k])
		}
	}
	for _, k := range ks[:30] {
		if ga, gb := mustFetch(t, a, k, "/x"), mustFetch(t, b, k, "/x"); ga != gb {
			t.Fatalf("key %q: instance a got it from %s, instance b from %s", k, ga, gb)
		}
	}
}

func TestOnlyBackendsThatAreUpArePicked(t *testing.T) {
	for _, balance := range []string{BalanceRoundRobin, BalanceLeastConn, BalanceKeyHash} {
		t.Run(balance, func(t *testing.T) {
			bs := startBackends(t, 3)
			c := newPool(t, Options{Balance: balance}, urls(bs...)...)
			markDown(t, c, bs[1].url)
			for i := range 60 {
				if got := mustFetch(t, c, strconv.Itoa(i), "/x"); got == bs[1].name {
					t.Fatalf("request %d went to %s, which is down", i, got)
				}
			}
			if bs[0].hits.Load() == 0 || bs[2].hits.Load() == 0 {
				t.Errorf("hits = %d, %d; want both backends up to get some", bs[0].hits.Load(), bs[2].hits.Load())
			}
		})
	}
}

func TestWhenEveryBackendIsDownDoFailsAtOnce(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{Timeout: 5 * time.Second, Health: HealthOptions{Fall: 2}}, urls(bs...)...)
	for _, b := range bs {
		markDown(t, c, b.url)
	}
	start := time.Now()
	_, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x"})
	if elapsed := time.Since(start); elapsed > 500*time.Millisecond {
		t.Errorf("Do took %v with every backend down, want it at once", elapsed)
	}
	var ue *Error
	if !errors.Is(err, ErrAllDown) || !errors.Is(err, ErrUnavailable) || !errors.As(err, &ue) {
		t.Fatalf("Do = %v, want an *Error wrapping ErrAllDown and ErrUnavailable", err)
	}
	if st := c.Stats(); st.Unavailable != 1 || st.Up != 0 || st.Backends != 2 {
		t.Errorf("Stats = %+v, want 1 unavailable, 0 of 2 up", st)
	}
	if n := bs[0].hits.Load() + bs[1].hits.Load(); n != 0 {
		t.Errorf("the backends got %d requests, want none", n)
	}
	idle(t, c)
}

// A client that would wait for a budget slot when no backend is up would wait for nothing:
// with every backend down, Do fails at once even with the budget full.
func TestWhenEveryBackendIsDownDoDoesNotWaitForTheBudget(t *testing.T) {
	bs := startBackends(t, 1)
	c := newPool(t, Options{Budget: BudgetOptions{Local: 1, MaxWait: 2 * time.Second}}, bs[0].url)
	held := open(t, c, "", "/hold") // the only slot
	markDown(t, c, bs[0].url)
	start := time.Now()
	_, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x"})
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Do took %v with every backend down, want it at once", elapsed)
	}
	if !errors.Is(err, ErrAllDown) {
		t.Errorf("Do = %v, want ErrAllDown", err)
	}
	held.Body.Close()
	idle(t, c)
}

func TestAGETWhoseBackendRefusesIsRetriedOnAnother(t *testing.T) {
	good := startBackend(t, "good")
	bad := refusing(t)
	c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 100}}, good.url, bad)
	k := keyOn(t, c, bad)
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
		resp, err := c.Do(t.Context(), &Request{Method: method, URI: "/x", Key: k})
		if err != nil {
			t.Fatalf("%s with its first backend refusing: %v, want the answer of the other", method, err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Backend"); got != "good" {
			t.Errorf("%s answered by %q, want good", method, got)
		}
	}
	st := c.Stats()
	if st.Retries != 3 || st.Success != 3 || st.Failed != 3 {
		t.Errorf("Stats = %+v, want 3 retries, 3 successes, 3 failures", st)
	}
	if s := server(t, c, bad); s.Failed != 3 || s.Failures != 3 || s.State != "up" {
		t.Errorf("refusing backend: %+v, want 3 failed, 3 failures in a row, still up (Fall is 100)", s)
	}
	idle(t, c)
}

func TestAPOSTWithABodyIsNeverRetried(t *testing.T) {
	good := startBackend(t, "good")
	bad := refusing(t)
	c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 100}}, good.url, bad)
	k := keyOn(t, c, bad)
	tests := []struct {
		name string
		body io.Reader
		n    int64
	}{
		{"sized", strings.NewReader("a=1"), 3},
		{"chunked", strings.NewReader("a=1"), -1},
	}
	for _, tt := range tests {
		_, err := fetch(c, &Request{Method: http.MethodPost, URI: "/form", Key: k, Body: tt.body, ContentLength: tt.n})
		if err == nil || errors.Is(err, ErrUnavailable) {
			t.Errorf("%s POST to a refusing backend: %v, want its dial error", tt.name, err)
		}
	}
	if n := good.hits.Load(); n != 0 {
		t.Errorf("the other backend got %d requests, want none", n)
	}
	if n := c.Stats().Retries; n != 0 {
		t.Errorf("Retries = %d, want 0", n)
	}
	idle(t, c)
}

func TestAPOSTWithoutABodyIsRetriedOnlyWhenNothingWasSent(t *testing.T) {
	bs := startBackends(t, 2)
	bad := refusing(t)
	c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 100}}, bs[0].url, bs[1].url, bad)
	// Refused: nothing reached a backend, so sending it to another is safe.
	k := keyOn(t, c, bad)
	for _, body := range []io.Reader{nil, http.NoBody, strings.NewReader("")} {
		if _, err := fetch(c, &Request{Method: http.MethodPost, URI: "/act", Key: k, Body: body}); err != nil {
			t.Errorf("POST (body %T) to a refusing backend: %v, want it sent to another", body, err)
		}
	}
	if n := c.Stats().Retries; n != 3 {
		t.Errorf("Retries = %d, want 3", n)
	}
	// Dropped after it was sent: the backend may have acted on it; never twice.
	k = keyOn(t, c, bs[0].url)
	if _, err := fetch(c, &Request{Method: http.MethodPost, URI: "/drop", Key: k}); err == nil {
		t.Error("POST /drop: no error, want the dropped connection's")
	}
	if n := c.Stats().Retries; n != 3 {
		t.Errorf("Retries = %d after a POST dropped once sent, want still 3", n)
	}
	// A GET dropped the same way is idempotent: it is retried.
	if got, err := fetch(c, &Request{Method: http.MethodGet, URI: "/drop?then=ok", Key: k}); err == nil {
		t.Errorf("GET /drop answered by %s: every backend drops it, want an error", got)
	}
	if n := c.Stats().Retries; n != 4 {
		t.Errorf("Retries = %d after a dropped GET, want 4", n)
	}
	idle(t, c)
}

// Every path out of Do gives back the budget slot and the in-flight count: with one slot, the
// next request still gets through.
func TestEveryErrorReleasesTheBudgetSlotAndTheInFlightCount(t *testing.T) {
	good := startBackend(t, "good")
	bad := refusing(t)
	tests := []struct {
		name string
		do   func(t *testing.T, c *Client)
	}{
		{"not retried", func(t *testing.T, c *Client) {
			_, err := fetch(c, &Request{Method: http.MethodPost, URI: "/x", Key: keyOn(t, c, bad),
				Body: strings.NewReader("x"), ContentLength: 1})
			if err == nil {
				t.Error("POST to a refusing backend: no error")
			}
		}},
		{"retried and failed again", func(t *testing.T, c *Client) {
			_, err := fetch(c, &Request{Method: http.MethodGet, URI: "/drop", Key: keyOn(t, c, good.url)})
			if err == nil {
				t.Error("GET /drop: no error")
			}
		}},
		{"retried with nowhere to go", func(t *testing.T, c *Client) {
			markDown(t, c, good.url)
			defer c.passed(c.member(good.url), time.Now())
			_, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x", Key: keyOn(t, c, bad)})
			if err == nil {
				t.Error("GET to the refusing backend, the other down: no error")
			}
		}},
		{"all down", func(t *testing.T, c *Client) {
			markDown(t, c, good.url)
			markDown(t, c, bad)
			defer c.passed(c.member(good.url), time.Now())
			defer c.passed(c.member(bad), time.Now())
			if _, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x"}); !errors.Is(err, ErrAllDown) {
				t.Errorf("Do = %v, want ErrAllDown", err)
			}
		}},
		{"cancelled", func(t *testing.T, c *Client) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := c.Do(ctx, &Request{Method: http.MethodGet, URI: "/x", Key: keyOn(t, c, good.url)}); err == nil {
				t.Error("Do with a cancelled context: no error")
			}
		}},
		{"deadline while the body is read", func(t *testing.T, c *Client) {
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			// /hold sends its header block at once: read the body until the deadline cuts it.
			resp, err := c.Do(ctx, &Request{Method: http.MethodGet, URI: "/hold", Key: keyOn(t, c, good.url)})
			if err != nil {
				t.Fatalf("GET /hold: %v", err)
			}
			if _, err := io.Copy(io.Discard, resp.Body); err == nil {
				t.Error("reading /hold past the deadline: no error")
			}
			resp.Body.Close()
			resp.Body.Close() // twice: released once
		}},
		{"bad target", func(t *testing.T, c *Client) {
			if _, err := c.Do(t.Context(), &Request{Method: http.MethodGet, URI: "/a b"}); err == nil {
				t.Error("Do of /a b: no error")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 100, Rise: 1},
				Budget: BudgetOptions{Local: 1}}, good.url, bad)
			tt.do(t, c)
			idle(t, c)
			if got, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x", Key: keyOn(t, c, good.url)}); err != nil || got != "good" {
				t.Fatalf("the next request: %q, %v; want it answered by good", got, err)
			}
			idle(t, c)
		})
	}
}

// A budget slot bounds the origin's work on a request, up to its headers: an open body (a long
// download, a stream) does not hold it, or a few clients could hold the whole budget (security
// review). The request stays in flight on its backend until the body is closed, once.
func TestABudgetSlotIsFreeOnceTheHeadersAreIn(t *testing.T) {
	b := startBackend(t, "a")
	c := newPool(t, Options{Budget: BudgetOptions{Local: 1}}, b.url)
	resp := open(t, c, "", "/x")
	second := open(t, c, "", "/x")
	if s := server(t, c, b.url); s.InFlight != 2 {
		t.Errorf("in flight = %d with two bodies open, want 2", s.InFlight)
	}
	if st := c.Stats(); st.Budget.InUse != 0 {
		t.Errorf("budget in use = %d with only bodies open, want 0", st.Budget.InUse)
	}
	resp.Body.Close()
	resp.Body.Close()
	second.Body.Close()
	idle(t, c)
	if s := server(t, c, b.url); s.InFlight != 0 {
		t.Errorf("in flight = %d after the bodies closed (one twice), want 0", s.InFlight)
	}
}

func TestFiveHundredsCountAsFailedButKeepTheBackendUp(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 1}}, urls(bs...)...)
	k := keyOn(t, c, bs[0].url)
	for range 3 {
		resp := open(t, c, k, "/500")
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("status %d, want the origin's 500 relayed", resp.StatusCode)
		}
	}
	s := server(t, c, bs[0].url)
	if s.State != "up" || s.Failed != 3 || s.Success != 0 || s.Failures != 0 {
		t.Errorf("after three 500s: %+v, want up with 3 failed (an answer is no passive failure)", s)
	}
	if st := c.Stats(); st.Failed != 3 || st.Retries != 0 {
		t.Errorf("Stats = %+v, want 3 failed, no retry (a 500 is an answer)", st)
	}
}

func TestAddAndRemoveWithoutRedis(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{}, bs[0].url)
	ctx := t.Context()

	s, err := c.Add(ctx, strings.ToUpper(bs[1].srv.URL[:7])+bs[1].srv.URL[7:]+"/")
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	if s.URL != bs[1].url || s.State != "up" || s.Source != SourceAPI || time.Since(s.Since) > time.Minute {
		t.Errorf("Add = %+v, want %s up since now, source api", s, bs[1].url)
	}
	if got := ids(c); !slices.Equal(got, sorted(bs[0].url, bs[1].url)) {
		t.Errorf("pool = %v after Add", got)
	}
	if server(t, c, bs[0].url).Source != SourceEnv {
		t.Error("the environment's backend lost its source")
	}
	// A backend added is up at once and takes its share.
	for range 4 {
		mustFetch(t, c, "", "/x")
	}
	if bs[1].hits.Load() != 2 {
		t.Errorf("the added backend got %d of 4 requests, want 2", bs[1].hits.Load())
	}

	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"add again", func() error { _, err := c.Add(ctx, bs[1].url+"/"); return err }, ErrExists},
		{"add ftp", func() error { _, err := c.Add(ctx, "ftp://x"); return err }, ErrBadBackend},
		{"add with query", func() error { _, err := c.Add(ctx, "http://x/?a=1"); return err }, ErrBadBackend},
		{"remove absent url", func() error { _, err := c.Remove(ctx, "http://127.0.0.1:1"); return err }, ErrNotFound},
		{"remove absent host:port", func() error { _, err := c.Remove(ctx, "127.0.0.1:1"); return err }, ErrNotFound},
		{"remove nonsense", func() error { _, err := c.Remove(ctx, "no port"); return err }, ErrBadBackend},
	}
	for _, tt := range tests {
		if err := tt.op(); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if got := ids(c); len(got) != 2 {
		t.Errorf("pool = %v after refused changes, want it unchanged", got)
	}

	// By host:port.
	hp := strings.TrimPrefix(bs[0].url, "http://")
	if id, err := c.Remove(ctx, hp); err != nil || id != bs[0].url {
		t.Errorf("Remove(%s) = %q, %v; want %s", hp, id, err, bs[0].url)
	}
	if _, err := c.Remove(ctx, bs[1].url); !errors.Is(err, ErrLastBackend) {
		t.Errorf("Remove of the last backend: %v, want ErrLastBackend", err)
	}
	if got := ids(c); !slices.Equal(got, []string{bs[1].url}) {
		t.Errorf("pool = %v, want only %s", got, bs[1].url)
	}
	for range 3 {
		if got := mustFetch(t, c, "", "/x"); got != bs[1].name {
			t.Errorf("a request went to %s, removed", got)
		}
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func TestAHostAndPortOfTwoBackendsIsAmbiguous(t *testing.T) {
	b := startBackend(t, "a")
	other := startBackend(t, "o")
	c := newPool(t, Options{}, b.url+"/v1", b.url+"/v2", other.url)
	hp := strings.TrimPrefix(b.url, "http://")
	if _, err := c.Remove(t.Context(), hp); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("Remove(%s) = %v, want ErrAmbiguous", hp, err)
	}
	if id, err := c.Remove(t.Context(), b.url+"/v1/"); err != nil || id != b.url+"/v1" {
		t.Fatalf("Remove by URL = %q, %v", id, err)
	}
	if id, err := c.Remove(t.Context(), hp); err != nil || id != b.url+"/v2" {
		t.Errorf("Remove(%s) with one backend left there = %q, %v; want %s/v2", hp, id, err, b.url)
	}
}

func TestThePoolHoldsAtMostMaxBackends(t *testing.T) {
	c := newPool(t, Options{}, "http://127.0.0.1:1")
	for i := 2; i <= MaxBackends; i++ {
		if _, err := c.Add(t.Context(), "http://127.0.0.1:"+strconv.Itoa(i)); err != nil {
			t.Fatalf("Add #%d: %v", i, err)
		}
	}
	if _, err := c.Add(t.Context(), "http://127.0.0.1:9999"); !errors.Is(err, ErrPoolFull) {
		t.Errorf("Add past %d: %v, want ErrPoolFull", MaxBackends, err)
	}
	if n := len(c.Servers()); n != MaxBackends {
		t.Errorf("%d backends, want %d", n, MaxBackends)
	}
}

func TestRequestsInFlightToARemovedBackendFinish(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{Balance: BalanceKeyHash}, urls(bs...)...)
	k := keyOn(t, c, bs[0].url)
	resp := open(t, c, k, "/hold") // headers in, body held open by the origin
	if _, err := c.Remove(t.Context(), bs[0].url); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if got := mustFetch(t, c, k, "/x"); got != bs[1].name {
		t.Errorf("after Remove the key went to %s", got)
	}
	bs[0].unblock()
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != bs[0].name {
		t.Errorf("body of the request in flight to the removed backend = %q, %v; want %q", body, err, bs[0].name)
	}
	resp.Body.Close()
	if n := c.Stats().Budget.InUse; n != 0 {
		t.Errorf("budget in use = %d, want 0", n)
	}
}

func TestNewRefusesAnEmptyPoolAndAnUnknownBalance(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without backends: no error")
	}
	u, _ := url.Parse("http://127.0.0.1:1")
	if _, err := New(Options{Backends: []*url.URL{u}, Balance: "random"}); err == nil {
		t.Error("New with balance random: no error")
	}
	if _, err := New(Options{Backends: []*url.URL{{Scheme: "ftp", Host: "x"}}}); err == nil {
		t.Error("New with an ftp backend: no error")
	}
	c, err := New(Options{Backends: []*url.URL{u, u}})
	if err != nil || len(c.Servers()) != 1 || c.Balance() != BalanceRoundRobin {
		t.Errorf("New with one URL twice = %v; want one backend, round_robin", err)
	}
}

func TestRunReturnsPromptlyAndLeavesNoGoroutine(t *testing.T) {
	bs := startBackends(t, 2)
	srv := redistest.Start(t)
	rdb := client(t, srv)
	c := newPool(t, Options{Health: HealthOptions{Interval: 20 * time.Millisecond}, Redis: rdb, PoolSecret: testPoolSecret,
		Budget: BudgetOptions{Fleet: 4}}, urls(bs...)...)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	testenv.WaitFor(t, 2*time.Second, "health checks of both backends", func() bool {
		return bs[0].checks.Load() >= 2 && bs[1].checks.Load() >= 2
	})
	subscribed(t, rdb, 1)
	mustFetch(t, c, "", "/x") // a fleet slot taken and given back
	// A membership change starts and stops loops.
	if _, err := c.Remove(t.Context(), bs[1].url); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return within 1s of its context's end")
	}
	testenv.WaitFor(t, 2*time.Second, "the goroutines of Run to end", func() bool {
		return len(runGoroutines()) == 0
	})
}

// runGoroutines are the stacks of the goroutines that Run starts, directly or through go-redis
// (the pool's subscription), other than the caller's.
func runGoroutines() []string {
	buf := make([]byte, 1<<20)
	var out []string
	for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "upstream.Test") || strings.Contains(g, "upstream.runPool") {
			continue
		}
		if strings.Contains(g, "swrproxy/upstream.") || strings.Contains(g, "go-redis/v9.(*channel)") ||
			strings.Contains(g, "go-redis/v9.(*PubSub)") {
			out = append(out, g)
		}
	}
	return out
}

func TestPickingABackendDoesNotAllocate(t *testing.T) {
	for _, balance := range []string{BalanceRoundRobin, BalanceLeastConn, BalanceKeyHash} {
		c := newPool(t, Options{Balance: balance}, "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
		markDown(t, c, "http://127.0.0.1:2")
		if n := testing.AllocsPerRun(100, func() { c.pick("/k", nil) }); n != 0 {
			t.Errorf("%s: pick allocates %v times, want 0", balance, n)
		}
	}
}

// Host names are case-insensitive (RFC 3986 §3.2.2): DELETE /_swr/servers/Origin/8080 names the
// backend http://origin:8080.
func TestRemoveByHostAndPortIgnoresTheHostsCase(t *testing.T) {
	c := newPool(t, Options{}, "http://origin.example:8080", "https://other.example")
	if id, err := c.Remove(t.Context(), "Origin.EXAMPLE:8080"); err != nil || id != "http://origin.example:8080" {
		t.Errorf("Remove(Origin.EXAMPLE:8080) = %q, %v; want http://origin.example:8080", id, err)
	}
	if _, err := c.Remove(t.Context(), "Other.Example:80"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove(Other.Example:80) = %v, want ErrNotFound (it listens on 443)", err)
	}
}

func TestARetryIsCountedOnlyWhenThereIsAnotherBackendToSendItTo(t *testing.T) {
	good := startBackend(t, "good")
	bad := refusing(t)
	c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 100}}, good.url, bad)
	markDown(t, c, good.url)
	if _, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x"}); err == nil {
		t.Fatal("GET to the refusing backend, the other down: no error")
	}
	if st := c.Stats(); st.Retries != 0 || st.Failed != 1 {
		t.Errorf("Stats = %+v, want no retry (there was nowhere to send one), 1 failed", st)
	}
}
