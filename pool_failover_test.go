package main

// The origin's pool failing over, end to end: round robin reaches every backend; a backend that
// stops is taken out by every instance within its health checks' fall while its requests are
// retried on the others (no client sees an error), and gets traffic again only after its rise;
// with every backend down the answer comes at once (the stale copy, or 503 with Retry-After).
// key_hash: pool_keyhash_test.go.

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// fleetNames name the instances of a fleet test: instance i's traffic is under /<name>/ and its
// health checks ask /health/<name>, so that a backend can tell who sent each request.
var fleetNames = []string{"a", "b"}

func instanceOf(path string) int {
	for i, n := range fleetNames {
		if strings.HasPrefix(path, "/"+n+"/") {
			return i
		}
	}
	return -1
}

// backendCounts is what one run of a stoppableBackend saw, per instance.
type backendCounts struct {
	restarted bool // this run is not the first: the instances had seen the backend go away
	traffic   [2]atomic.Int64
	checks    [2]atomic.Int64 // passed health checks (each answers 200)
	// early counts the traffic of a restarted backend that arrived before healthRise of the
	// sending instance's checks had passed on it: traffic to a backend still marked down.
	early atomic.Int64
}

// stoppableBackend is an origin on a fixed 127.0.0.1 port that can be stopped (its listener and
// every connection closed: new connections are refused) and started again on the same port. Its
// answers under /<name>/private/ are no-store, the others cacheable.
type stoppableBackend struct {
	URL  string
	addr string
	cur  atomic.Pointer[backendCounts]
	mu   sync.Mutex
	srv  *http.Server
}

func newStoppableBackend(t *testing.T) *stoppableBackend {
	t.Helper()
	b := &stoppableBackend{addr: "127.0.0.1:0"}
	b.start(t)
	b.URL = "http://" + b.addr
	t.Cleanup(b.stop)
	return b
}

// start listens on b's port (a new one the first time) with fresh counts.
func (b *stoppableBackend) start(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	c := &backendCounts{restarted: b.srv != nil}
	b.cur.Store(c)
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", b.addr, err)
	}
	b.addr = ln.Addr().String()
	b.srv = &http.Server{Handler: b, ErrorLog: log.New(io.Discard, "", 0)}
	srv := b.srv
	go srv.Serve(ln) // returns once stop closes srv
}

// stop closes the listener and every connection, idle or active, at once.
func (b *stoppableBackend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.srv.Close()
	}
}

func (b *stoppableBackend) counts() *backendCounts { return b.cur.Load() }

func (b *stoppableBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := b.cur.Load()
	if isHealthCheck(r) {
		if i := instanceOf(strings.TrimPrefix(r.URL.Path, "/health") + "/"); i >= 0 {
			c.checks[i].Add(1)
		}
		return
	}
	i := instanceOf(r.URL.Path)
	if i < 0 {
		http.Error(w, "no instance in the path", http.StatusNotFound)
		return
	}
	if c.restarted && c.checks[i].Load() < healthRise {
		c.early.Add(1)
	}
	c.traffic[i].Add(1)
	if strings.Contains(r.URL.Path, "/private/") {
		w.Header().Set("Cache-Control", "no-store")
	} else {
		w.Header().Set("Cache-Control", "max-age=60")
	}
	fmt.Fprint(w, "ok")
}

// trafficLoad keeps clients busy on every instance until stopped: each request a new key,
// alternately no-store (each one reaches a backend) and cacheable (each one a fill). It counts
// the replies and keeps every one that is not a 200.
type trafficLoad struct {
	done     atomic.Int64
	seq      atomic.Int64
	mu       sync.Mutex
	failures []string
	quit     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

func startTraffic(t *testing.T, insts []*instance, clientsEach int) *trafficLoad {
	l := &trafficLoad{quit: make(chan struct{})}
	for i, in := range insts {
		for range clientsEach {
			l.wg.Go(func() {
				for {
					select {
					case <-l.quit:
						return
					default:
					}
					n := l.seq.Add(1)
					kind := "public"
					if n%2 == 0 {
						kind = "private"
					}
					url := fmt.Sprintf("%s/%s/%s/%d", in.URL, fleetNames[i], kind, n)
					r := do(http.MethodGet, url)
					if r.StatusCode != http.StatusOK || r.Body != "ok" {
						l.mu.Lock()
						l.failures = append(l.failures, fmt.Sprintf("GET %s: %d %s %q", url, r.StatusCode, r.Header.Get("Cache-Status"), trim(r.Body)))
						l.mu.Unlock()
					}
					l.done.Add(1)
				}
			})
		}
	}
	t.Cleanup(l.stop)
	return l
}

// stop ends the load and waits for its clients; it may be called more than once.
func (l *trafficLoad) stop() {
	l.stopOnce.Do(func() { close(l.quit) })
	l.wg.Wait()
}

func (l *trafficLoad) failed() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failures...)
}

func TestAStoppedBackendIsTakenOutByEveryInstanceWithoutErrorsAndBackAfterItsRise(t *testing.T) {
	// Not parallel: it bounds how long the instances take to see the backend go and come back.
	rs := redistest.Start(t)
	backends := []*stoppableBackend{newStoppableBackend(t), newStoppableBackend(t), newStoppableBackend(t)}
	urls := make([]string, len(backends))
	for i, b := range backends {
		urls[i] = b.URL
	}
	var logs [2]syncBuffer
	insts := make([]*instance, len(fleetNames))
	for i, name := range fleetNames {
		insts[i] = startProxyLogging(t, strings.Join(urls, ","), healthEnv(
			"SWR_REDIS_URL", rs.URL(), "SWR_UPSTREAM_BALANCE", "round_robin", "SWR_HEALTH_PATH", "/health/"+name), &logs[i])
	}
	t.Cleanup(client.CloseIdleConnections) // before the instances stop: they wait for open connections

	load := startTraffic(t, insts, 3)
	testenv.WaitFor(t, 5*time.Second, "traffic from both instances on all three backends", func() bool {
		for _, b := range backends {
			for i := range insts {
				if b.counts().traffic[i].Load() == 0 {
					return false
				}
			}
		}
		return true
	})

	// The third backend stops: connections to it are refused, those open to it are closed.
	gone := backends[2]
	stoppedAt := time.Now()
	gone.stop()
	testenv.WaitFor(t, 5*time.Second, "both instances to mark the stopped backend down", func() bool {
		return logged(&logs[0], "backend down", gone.URL) && logged(&logs[1], "backend down", gone.URL)
	})
	tookDown := time.Since(stoppedAt)
	if bound := healthFall*healthEvery + time.Second; tookDown > bound {
		t.Errorf("the instances took %v to mark the stopped backend down, want within %d checks of %v (bound %v)",
			tookDown.Round(time.Millisecond), healthFall, healthEvery, bound)
	}
	// Traffic goes on, on the two others.
	mark := load.done.Load()
	testenv.WaitFor(t, 5*time.Second, "100 more requests while the backend is down", func() bool { return load.done.Load() >= mark+100 })

	// Back on the same port: each instance sends traffic again once its own checks passed rise times.
	restartedAt := time.Now()
	gone.start(t)
	testenv.WaitFor(t, 5*time.Second, "traffic from both instances on the restarted backend", func() bool {
		c := gone.counts()
		return c.traffic[0].Load() > 0 && c.traffic[1].Load() > 0
	})
	tookUp := time.Since(restartedAt)
	if bound := healthRise*healthEvery + time.Second; tookUp > bound {
		t.Errorf("traffic reached the restarted backend after %v, want within %d checks of %v (bound %v)",
			tookUp.Round(time.Millisecond), healthRise, healthEvery, bound)
	}
	if n := gone.counts().early.Load(); n > 0 {
		t.Errorf("%d requests reached the restarted backend before %d health checks of their instance had passed on it", n, healthRise)
	}
	load.stop()
	if f := load.failed(); len(f) > 0 {
		t.Errorf("%d of %d requests failed, e.g. %q", len(f), load.done.Load(), f[:min(5, len(f))])
	}
	for i := range insts {
		if !logged(&logs[i], "backend up", gone.URL) {
			t.Errorf("instance %s did not log the backend up again", fleetNames[i])
		}
	}
	t.Logf("%d requests, none failed; down on both instances after %v, traffic again after %v",
		load.done.Load(), tookDown.Round(time.Millisecond), tookUp.Round(time.Millisecond))
}

func TestWithEveryBackendDownAStaleCopyOrA503ComesAtOnce(t *testing.T) {
	// Not parallel: it bounds how long each answer takes.
	release := make(chan struct{})
	var hung atomic.Bool
	var trafficWhileHung atomic.Int64
	serve := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0, stale-while-revalidate=0, stale-if-error=600")
		fmt.Fprint(w, "kept")
	}
	refusing := newOrigin(t, serve)
	hanging := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if !hung.Load() {
			serve(w, r)
			return
		}
		if !isHealthCheck(r) {
			trafficWhileHung.Add(1)
		}
		<-release // accepts, never answers: only a timeout ends the exchange
	})
	const timeout = 10 * time.Second
	p := startProxy(t, refusing.URL+","+hanging.URL, healthEnv(
		"SWR_UPSTREAM_TIMEOUT", timeout.String(), "SWR_HEALTH_TIMEOUT", "200ms"))
	t.Cleanup(func() { close(release) }) // first: the proxy's and the origins' shutdowns wait for the hung requests

	expect(t, get(t, p.URL+"/kept"), 200, "MISS", "kept") // stored already stale, within stale-if-error

	refusing.Close() // connections refused
	hung.Store(true) // the other accepts and never answers, its checks time out
	testenv.WaitFor(t, 5*time.Second, "readiness to say the origin is unreachable", func() bool {
		r := do(http.MethodGet, p.URL+"/_swr/readyz")
		return strings.Contains(r.Body, `"origin":"unreachable"`)
	})

	start := time.Now()
	r := get(t, p.URL+"/kept")
	tookStale := time.Since(start)
	expect(t, r, 200, "STALE", "kept")

	start = time.Now()
	r = get(t, p.URL+"/never-seen")
	tookMiss := time.Since(start)
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "5" ||
		r.Header.Get("Cache-Status") != "swrproxy; fwd=miss; detail=origin-unavailable" {
		t.Errorf("never-seen key with every backend down: %d Retry-After=%q Cache-Status=%q %q, want 503, Retry-After 5, detail=origin-unavailable",
			r.StatusCode, r.Header.Get("Retry-After"), r.Header.Get("Cache-Status"), trim(r.Body))
	}
	const bound = 2 * time.Second
	for _, a := range []struct {
		what string
		took time.Duration
	}{{"the stale copy", tookStale}, {"the 503", tookMiss}} {
		if a.took > bound {
			t.Errorf("%s took %v with every backend down, want at once (bound %v; SWR_UPSTREAM_TIMEOUT %v)", a.what, a.took, bound, timeout)
		}
	}
	if n := trafficWhileHung.Load(); n > 0 {
		t.Errorf("%d requests were sent to the backend that was down", n)
	}
	t.Logf("stale copy in %v, 503 in %v", tookStale.Round(time.Microsecond), tookMiss.Round(time.Microsecond))
}

func TestABackendThatAnswersBetweenItsFailuresStaysUp(t *testing.T) {
	t.Parallel()
	// Fall failures *in a row* take a backend down: one that resets every other request but
	// answers the ones between is flaky, not down (its failed requests are retried elsewhere).
	var requests, answered atomic.Int64
	flaky := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if isHealthCheck(r) {
			return
		}
		if requests.Add(1)%2 == 1 {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close() // reset: no response at all
			}
			return
		}
		answered.Add(1)
		// A new connection for the next request: a reset on a reused one would be retried by
		// the transport itself, unseen by the pool.
		w.Header().Set("Connection", "close")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "ok")
	})
	steady := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "ok")
	})
	var logs syncBuffer
	// Checks out of the way (the first after a random part of an hour): only traffic judges.
	p := startProxyLogging(t, flaky.URL+","+steady.URL, healthEnv("SWR_HEALTH_INTERVAL", "1h"), &logs)
	const n = 40
	for i := range n {
		expect(t, get(t, p.URL+"/f/"+strconv.Itoa(i)), 200, "BYPASS", "ok")
	}
	t.Logf("flaky: %d requests, %d answered; steady: %d", requests.Load(), answered.Load(), steady.hits.Load())
	if logged(&logs, "backend down", flaky.URL) {
		t.Errorf("the flaky backend was marked down, though no %d of its failures came in a row", healthFall)
	}
	if got := answered.Load(); got < n/4 {
		t.Errorf("the flaky backend answered %d of %d requests: it stopped getting traffic after %d requests", got, n, requests.Load())
	}
}
