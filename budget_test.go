package main

// The origin budget, end to end: a storm of cold keys over three instances on one Redis sends the
// origin at most SWR_ORIGIN_FLEET_MAX_CONCURRENCY requests at once while hot keys are still
// answered from cache; SWR_ORIGIN_MAX_CONCURRENCY caps one instance; past SWR_ORIGIN_MAX_WAIT a
// request gets its stale copy or 503 with Retry-After.

import (
	"fmt"
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

// peakOrigin is an origin that takes a while over each request (health checks aside) and
// records the most requests it ever had in flight at once.
type peakOrigin struct {
	*origin
	inFlight, peak atomic.Int64
}

func newPeakOrigin(t *testing.T, delay time.Duration) *peakOrigin {
	t.Helper()
	p := &peakOrigin{}
	p.origin = newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if isHealthCheck(r) {
			return
		}
		n := p.inFlight.Add(1)
		defer p.inFlight.Add(-1)
		for {
			old := p.peak.Load()
			if n <= old || p.peak.CompareAndSwap(old, n) {
				break
			}
		}
		time.Sleep(delay) // the origin's own work: what makes requests overlap
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.Path)
	})
	return p
}

// storm requests every path of paths once on each instance, from clients goroutines per
// instance, and returns the replies that were not a 200 with the path as body.
func storm(insts []*instance, paths []string, clients int) []string {
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	for i, in := range insts {
		next := make(chan string)
		wg.Go(func() {
			defer close(next)
			for k := range paths { // each instance starts at its own place: some keys overlap, some do not
				next <- paths[(k+i*len(paths)/len(insts))%len(paths)]
			}
		})
		for range clients {
			wg.Go(func() {
				for p := range next {
					if r := do(http.MethodGet, in.URL+p); r.StatusCode != http.StatusOK || r.Body != p {
						mu.Lock()
						bad = append(bad, fmt.Sprintf("GET %s: %d %s %s %q", p, r.StatusCode, r.Header.Get("X-Cache"), r.Header.Get("Cache-Status"), trim(r.Body)))
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	return bad
}

func coldPaths(n int) []string {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = "/cold/" + strconv.Itoa(i)
	}
	return paths
}

func TestTheFleetBudgetCapsTheOriginAcrossInstancesWhileHotKeysAreServedFromCache(t *testing.T) {
	// Not parallel: it bounds how long hot keys take during the storm.
	const (
		fleetCap = 4
		keys     = 300
		clients  = 32 // per instance
		hotBound = time.Second
	)
	rs := redistest.Start(t)
	o := newPeakOrigin(t, 20*time.Millisecond)
	env := map[string]string{"SWR_REDIS_URL": rs.URL(), "SWR_ORIGIN_FLEET_MAX_CONCURRENCY": strconv.Itoa(fleetCap),
		"SWR_ORIGIN_MAX_WAIT": "20s"}
	insts := []*instance{startProxy(t, o.URL, env), startProxy(t, o.URL, env), startProxy(t, o.URL, env)}
	t.Cleanup(client.CloseIdleConnections) // before the instances stop: they wait for open connections
	for _, in := range insts {
		if r := get(t, in.URL+"/hot"); r.StatusCode != 200 {
			t.Fatalf("warming up /hot: %d", r.StatusCode)
		}
	}
	hotBefore := o.hits.Load()

	// During the storm each instance answers the hot key from cache, at once.
	var hot struct {
		sync.Mutex
		n       int
		bad     []string
		slowest time.Duration
	}
	stopHot := make(chan struct{})
	var hotWG sync.WaitGroup
	for _, in := range insts {
		hotWG.Go(func() {
			for {
				select {
				case <-stopHot:
					return
				case <-time.After(20 * time.Millisecond):
				}
				start := time.Now()
				r := do(http.MethodGet, in.URL+"/hot")
				took := time.Since(start)
				hot.Lock()
				hot.n++
				hot.slowest = max(hot.slowest, took)
				if r.StatusCode != 200 || r.Header.Get("X-Cache") != "HIT" {
					hot.bad = append(hot.bad, fmt.Sprintf("%d %s %s", r.StatusCode, r.Header.Get("X-Cache"), r.Header.Get("Cache-Status")))
				}
				hot.Unlock()
			}
		})
	}
	start := time.Now()
	bad := storm(insts, coldPaths(keys), clients)
	took := time.Since(start)
	close(stopHot)
	hotWG.Wait()

	if len(bad) > 0 {
		t.Errorf("%d of %d storm requests failed, e.g. %q", len(bad), keys*len(insts), bad[:min(5, len(bad))])
	}
	if peak := o.peak.Load(); peak > fleetCap {
		t.Errorf("the origin had %d requests in flight at once, want at most the fleet's cap of %d", peak, fleetCap)
	} else if peak < 2 {
		t.Errorf("the origin never had more than %d request in flight: the storm did not test the cap", peak)
	}
	fetched := o.hits.Load() - hotBefore
	if fetched < keys {
		t.Errorf("the origin saw %d requests for %d cold keys", fetched, keys)
	}
	if hot.n == 0 || len(hot.bad) > 0 {
		t.Errorf("%d of %d hot-key replies during the storm were not HITs, e.g. %q", len(hot.bad), hot.n, hot.bad[:min(5, len(hot.bad))])
	}
	if hot.slowest > hotBound {
		t.Errorf("the slowest hot-key reply during the storm took %v, want at most %v: it waited for the budget", hot.slowest, hotBound)
	}
	t.Logf("%d requests for %d keys in %v; origin: %d requests, peak %d in flight (cap %d); %d hot HITs, slowest %v",
		keys*len(insts), keys, took.Round(time.Millisecond), fetched, o.peak.Load(), fleetCap, hot.n, hot.slowest.Round(time.Millisecond))
}

func TestTheInstanceBudgetCapsItsOriginRequests(t *testing.T) {
	t.Parallel()
	const localCap = 2
	o := newPeakOrigin(t, 20*time.Millisecond)
	p := startProxy(t, o.URL, map[string]string{"SWR_ORIGIN_MAX_CONCURRENCY": strconv.Itoa(localCap), "SWR_ORIGIN_MAX_WAIT": "20s"})
	t.Cleanup(client.CloseIdleConnections)
	if bad := storm([]*instance{p}, coldPaths(60), 16); len(bad) > 0 {
		t.Errorf("%d requests failed, e.g. %q", len(bad), bad[:min(5, len(bad))])
	}
	if peak := o.peak.Load(); peak != localCap {
		t.Errorf("the origin had at most %d requests in flight at once, want the cap of %d (16 clients)", peak, localCap)
	}
}

func TestPastTheMaxWaitARequestGetsItsStaleCopyOrA503(t *testing.T) {
	// Not parallel: it bounds how long the refused requests take.
	const maxWait = 200 * time.Millisecond
	entered, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case isHealthCheck(r):
			return
		case r.URL.Path == "/block":
			close(entered)
			<-release // holds the only slot
		case strings.HasPrefix(r.URL.Path, "/stale"):
			w.Header().Set("Cache-Control", "max-age=0, stale-while-revalidate=0, stale-if-error=600")
		default:
			w.Header().Set("Cache-Control", "max-age=60")
		}
		fmt.Fprint(w, r.URL.Path)
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_ORIGIN_MAX_CONCURRENCY": "1", "SWR_ORIGIN_MAX_WAIT": maxWait.String()})
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // first: shutdowns wait for /block

	expect(t, get(t, p.URL+"/stale"), 200, "MISS", "/stale") // stored already stale, within stale-if-error
	blocked := make(chan reply, 1)
	go func() { blocked <- do(http.MethodGet, p.URL+"/block") }()
	<-entered

	start := time.Now()
	r := get(t, p.URL+"/cold")
	tookCold := time.Since(start)
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "1" ||
		r.Header.Get("Cache-Status") != "swrproxy; fwd=miss; detail=origin-unavailable" {
		t.Errorf("cold key with the budget taken: %d Retry-After=%q Cache-Status=%q %q, want 503, Retry-After 1, detail=origin-unavailable",
			r.StatusCode, r.Header.Get("Retry-After"), r.Header.Get("Cache-Status"), trim(r.Body))
	}
	start = time.Now()
	r = get(t, p.URL+"/stale")
	tookStale := time.Since(start)
	expect(t, r, 200, "STALE", "/stale")
	for _, a := range []struct {
		what string
		took time.Duration
	}{{"the 503", tookCold}, {"the stale copy", tookStale}} {
		if a.took < maxWait*3/4 || a.took > maxWait+2*time.Second {
			t.Errorf("%s came after %v, want after about SWR_ORIGIN_MAX_WAIT (%v)", a.what, a.took, maxWait)
		}
	}

	// The slot free again, the same cold key is fetched: the 503 was not stored.
	releaseOnce.Do(func() { close(release) })
	if r := <-blocked; r.StatusCode != 200 {
		t.Errorf("the request holding the slot: %d", r.StatusCode)
	}
	expect(t, get(t, p.URL+"/cold"), 200, "MISS", "/cold")
	t.Logf("503 after %v, stale copy after %v (max wait %v)", tookCold.Round(time.Millisecond), tookStale.Round(time.Millisecond), maxWait)
}

func TestWithEveryBackendDownAFullBudgetDoesNotDelayTheAnswer(t *testing.T) {
	// Not parallel: it bounds how long each answer takes.
	// Backends that hang are the outage that fills the budget: their requests hold the slots
	// until they time out. Once the checks have marked every backend down, a request must not
	// queue for a slot only to find no backend to use: it is answered at once.
	const maxWait, timeout = 5 * time.Second, 10 * time.Second
	release := make(chan struct{})
	var hung atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if hung.Load() {
			<-release // accepts, never answers
			return
		}
		w.Header().Set("Cache-Control", "max-age=0, stale-while-revalidate=0, stale-if-error=600")
		fmt.Fprint(w, "kept")
	})
	p := startProxy(t, o.URL, healthEnv("SWR_ORIGIN_MAX_CONCURRENCY", "1", "SWR_ORIGIN_MAX_WAIT", maxWait.String(),
		"SWR_UPSTREAM_TIMEOUT", timeout.String(), "SWR_HEALTH_TIMEOUT", "200ms"))
	t.Cleanup(func() { close(release) }) // first: the shutdowns wait for the hung requests

	expect(t, get(t, p.URL+"/kept"), 200, "MISS", "kept") // stored already stale, within stale-if-error
	hung.Store(true)
	holding := make(chan reply, 1)
	go func() { holding <- do(http.MethodGet, p.URL+"/hangs") }() // takes the only slot, for the timeout
	testenv.WaitFor(t, 5*time.Second, "readiness to say the origin is unreachable", func() bool {
		return strings.Contains(do(http.MethodGet, p.URL+"/_swr/readyz").Body, `"origin":"unreachable"`)
	})

	start := time.Now()
	r := get(t, p.URL+"/kept")
	tookStale := time.Since(start)
	expect(t, r, 200, "STALE", "kept")
	start = time.Now()
	r = get(t, p.URL+"/never-seen")
	tookMiss := time.Since(start)
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "5" {
		t.Errorf("never-seen key with every backend down: %d Retry-After=%q, want 503 with Retry-After 5 (every backend down)",
			r.StatusCode, r.Header.Get("Retry-After"))
	}
	const bound = 2 * time.Second
	for _, a := range []struct {
		what string
		took time.Duration
	}{{"the stale copy", tookStale}, {"the 503", tookMiss}} {
		if a.took > bound {
			t.Errorf("%s took %v with every backend down and the budget full, want at once (bound %v; SWR_ORIGIN_MAX_WAIT %v)", a.what, a.took, bound, maxWait)
		}
	}
	t.Logf("stale copy in %v, 503 in %v", tookStale.Round(time.Microsecond), tookMiss.Round(time.Microsecond))
}

func TestPastTheMaxWaitTheFleetsSlotsHeldElsewhereGiveA503(t *testing.T) {
	// Not parallel: it bounds how long the refused request takes.
	const maxWait = 200 * time.Millisecond
	rs := redistest.Start(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			close(entered)
			<-release // holds the fleet's only slot
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.URL.Path)
	})
	env := map[string]string{"SWR_REDIS_URL": rs.URL(), "SWR_ORIGIN_FLEET_MAX_CONCURRENCY": "1", "SWR_ORIGIN_MAX_WAIT": maxWait.String()}
	a, b := startProxy(t, o.URL, env), startProxy(t, o.URL, env)
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // first: shutdowns wait for /block

	blocked := make(chan reply, 1)
	go func() { blocked <- do(http.MethodGet, a.URL+"/block") }()
	<-entered
	start := time.Now()
	r := get(t, b.URL+"/cold")
	took := time.Since(start)
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "1" {
		t.Errorf("cold key on B with A holding the fleet's slot: %d Retry-After=%q, want 503 with Retry-After 1", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if took < maxWait*3/4 || took > maxWait+2*time.Second {
		t.Errorf("the 503 came after %v, want after about SWR_ORIGIN_MAX_WAIT (%v)", took, maxWait)
	}
	releaseOnce.Do(func() { close(release) })
	if r := <-blocked; r.StatusCode != 200 {
		t.Errorf("the request holding the slot: %d", r.StatusCode)
	}
	expect(t, get(t, b.URL+"/cold"), 200, "MISS", "/cold") // the slot is free again
	t.Logf("503 after %v (max wait %v)", took.Round(time.Millisecond), maxWait)
}
