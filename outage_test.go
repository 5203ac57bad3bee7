package main

// Redis failing, end to end: down, frozen or holding a corrupt value, Redis never becomes the clients'
// trouble, and Redis calls are never retried.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/config"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/tiers"
)

// timed is one request and how long its client waited.
type timed struct {
	what   string
	status int
	took   time.Duration
}

// waits collects timed requests from many goroutines.
type waits struct {
	mu  sync.Mutex
	all []timed
}

func (w *waits) get(url string, hdr ...string) {
	start := time.Now()
	r := do(http.MethodGet, url, hdr...)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all = append(w.all, timed{url + " " + strings.Join(hdr, " "), r.StatusCode, time.Since(start)})
}

// check fails the test for every reply that is not a 200, and returns the longest wait.
func (w *waits) check(t *testing.T, phase string) timed {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest timed
	for _, r := range w.all {
		if r.status != http.StatusOK {
			t.Errorf("%s: GET %s = %d, want 200", phase, r.what, r.status)
		}
		if r.took > longest.took {
			longest = r
		}
	}
	t.Logf("%s: %d requests, longest wait %v (%s)", phase, len(w.all), longest.took.Round(time.Millisecond), longest.what)
	return longest
}

// redisReady reports whether the instance uses Redis again (reachable, circuit closed).
func redisReady(in *instance) bool {
	r := do(http.MethodGet, in.URL+"/_swr/readyz")
	return r.StatusCode == http.StatusOK && strings.Contains(r.Body, `"redis":"ok"`)
}

// A Redis that stalls (SIGSTOP) executes, when it resumes, every command clients sent meanwhile,
// including fetch-lock SETs whose callers gave up long ago. Such a lock must not be left behind
// for nobody: requests of its key would wait for its TTL (5 s) after Redis came back.
func TestAFrozenRedisNeverMakesRequestsWaitLongerThanOneDeadline(t *testing.T) {
	// Not parallel: it bounds how long each request waits.
	const (
		keys        = 16
		originDelay = 50 * time.Millisecond
		freeze      = 2 * time.Second
		// One Redis deadline (250 ms) plus the origin's time is the target (measured: about
		// 330 ms while frozen, 200 ms after, under -race on 2 cores); the bound leaves room for a
		// noisy machine, and fails for three deadlines in a row or the 5 s an orphaned lock costs.
		bound = time.Second
	)
	srv := redistest.Start(t)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(originDelay) // the origin's own time, part of the bound
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "%s in %s", r.URL.Path, r.Header.Get("Accept-Language"))
	})
	env := map[string]string{"SWR_REDIS_URL": srv.URL()}
	instances := []*instance{startProxy(t, o.URL, env), startProxy(t, o.URL, env)}
	// Many concurrent requests leave connections the client dialled but never used; the
	// instances' shutdown would wait for them.
	t.Cleanup(client.CloseIdleConnections)

	// Both instances hold one variant of every page in L1, so that a request for another
	// variant goes to the fetch lock without reading Redis first.
	for i := range keys {
		for _, in := range instances {
			if r := get(t, in.URL+"/page/"+strconv.Itoa(i), "Accept-Language", "en"); r.StatusCode != http.StatusOK {
				t.Fatalf("warming up: %d %s", r.StatusCode, trim(r.Body))
			}
		}
	}

	// Redis stalls while requests for other variants and for new keys arrive on both instances.
	var during, after waits
	var wg sync.WaitGroup
	stopLoad := make(chan struct{})
	wg.Go(func() { // distinct new keys, one every 20 ms, across the stall, its end and what follows
		for n := 0; ; n++ {
			select {
			case <-stopLoad:
				return
			case <-time.After(20 * time.Millisecond):
			}
			in := instances[n%len(instances)]
			wg.Go(func() { during.get(in.URL+"/new/"+strconv.Itoa(n), "Accept-Language", "en") })
		}
	})
	srv.Freeze()
	t.Cleanup(srv.Thaw)
	frozeAt := time.Now()
	for i := range keys {
		for _, in := range instances {
			wg.Go(func() { during.get(in.URL+"/page/"+strconv.Itoa(i), "Accept-Language", "fr") })
		}
	}
	time.Sleep(time.Until(frozeAt.Add(freeze))) // the stall itself: nothing to poll for
	srv.Thaw()

	// Redis is back: once both instances use it again, every variant of every key, on both.
	for _, in := range instances {
		testenv.WaitFor(t, 10*time.Second, "the instance to use Redis again", func() bool { return redisReady(in) })
	}
	for i := range keys {
		for _, in := range instances {
			for _, lang := range []string{"fr", "en", "de"} {
				wg.Go(func() { after.get(in.URL+"/page/"+strconv.Itoa(i), "Accept-Language", lang) })
			}
		}
	}
	close(stopLoad)
	wg.Wait()

	for _, w := range []struct {
		phase string
		w     *waits
	}{{"while Redis was frozen", &during}, {"after Redis came back", &after}} {
		if longest := w.w.check(t, w.phase); longest.took > bound {
			t.Errorf("%s: GET %s waited %v, want at most about one Redis deadline plus the origin's %v (bound %v)",
				w.phase, longest.what, longest.took.Round(time.Millisecond), originDelay, bound)
		}
	}
}

// redisConfig is a config whose L2 is url.
func redisConfig(t *testing.T, url string) config.Config {
	t.Helper()
	vars := map[string]string{"SWR_UPSTREAM": "http://127.0.0.1:1", "SWR_REDIS_URL": url}
	cfg, err := config.LoadLookup(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// The README promises that Redis calls are not retried: a dead Redis costs a call one refused
// dial, not five dials 100 ms apart, whatever the client kind.
func TestRedisCallsFailAtOnceWhenRedisIsDown(t *testing.T) {
	// Not parallel: it bounds how long each call takes.
	down := testenv.FreePort(t) // nothing listens there: dials are refused at once
	addr := "127.0.0.1:" + strconv.Itoa(down)
	tests := []struct{ name, url string }{
		{"url", "redis://" + addr + "/0"},
		{"one seed", addr},
		{"cluster seeds", addr + "," + addr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, err := newRedis(redisConfig(t, tt.url))
			if err != nil {
				t.Fatalf("newRedis(%q): %v", tt.url, err)
			}
			defer rdb.Close()
			for i := range 3 {
				start := time.Now()
				err := rdb.Ping(context.Background()).Err()
				// Four retry pauses alone would take 400 ms; a refused dial on loopback takes
				// microseconds. The bound is one call deadline.
				if took := time.Since(start); err == nil || took > 250*time.Millisecond {
					t.Errorf("Ping %d with Redis down = %v after %v; want an error at once (no dial or command retries)", i, err, took)
				}
			}
		})
	}
}

// A stalled Redis costs a call one deadline (250 ms), even when the caller gave none, and the
// call is sent once: a retry would make Redis run it again when it resumes.
func TestRedisCallsEndWithinOneDeadlineWhenRedisIsFrozen(t *testing.T) {
	// Not parallel: it bounds how long each call takes.
	tests := []struct {
		name  string
		start func(testing.TB) *redistest.Server
		url   func(*redistest.Server) string
	}{
		{"url", redistest.Start, (*redistest.Server).URL},
		{"cluster seeds", redistest.StartClusterNode, func(s *redistest.Server) string { return s.Addr() + "," + s.Addr() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.start(t)
			rdb, err := newRedis(redisConfig(t, tt.url(srv)))
			if err != nil {
				t.Fatalf("newRedis: %v", err)
			}
			defer rdb.Close()
			if err := rdb.Ping(context.Background()).Err(); err != nil {
				t.Fatalf("Ping before the freeze: %v", err)
			}
			srv.Freeze()
			start := time.Now()
			err = rdb.Incr(context.Background(), "swr:test:calls").Err()
			took := time.Since(start)
			srv.Thaw()
			t.Logf("INCR with Redis frozen: %v after %v", err, took.Round(time.Millisecond))
			if err == nil || took > time.Second {
				t.Errorf("INCR with Redis frozen = %v after %v; want a timeout after one deadline (250 ms)", err, took)
			}
			// Redis runs what it received during the stall once it resumes: every copy of the INCR.
			raw := srv.Client()
			var n int64
			testenv.WaitFor(t, 5*time.Second, "Redis to run the INCR sent into the stall", func() bool {
				n, _ = raw.Get(context.Background(), "swr:test:calls").Int64()
				return n > 0
			})
			for range 20 { // a few more round trips, in case a retried copy is still queued
				n, _ = raw.Get(context.Background(), "swr:test:calls").Int64()
			}
			if n != 1 {
				t.Errorf("Redis ran the INCR sent into the stall %d times, want once (no retries)", n)
			}
		})
	}
}

func TestCorruptL2ValueIsAMissAndIsReplaced(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "fresh from origin")
	})
	rdb := rs.Client()
	ctx := context.Background()
	env := map[string]string{"SWR_REDIS_URL": rs.URL()}
	// The key's hash in L2, as a first instance stores it, then corrupted (a broken writer, a
	// bad disk): instances that start after it have only L2 to go by.
	first := startProxy(t, o.URL, env)
	expect(t, get(t, first.URL+"/corrupt"), 200, "MISS", "fresh from origin")
	rk := objectHash(t, rdb)
	if err := rdb.HSet(ctx, rk, "v:", "\x01garbage that is not an entry").Err(); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, o.URL, env)
	expect(t, get(t, p.URL+"/corrupt"), 200, "MISS", "fresh from origin")
	v, err := rdb.HGet(ctx, rk, "v:").Result()
	if err != nil || strings.Contains(v, "garbage") {
		t.Fatalf("L2 value after the fill: %q, %v; want a valid entry", trim(v), err)
	}
	q := startProxy(t, o.URL, env)
	expect(t, get(t, q.URL+"/corrupt"), 200, "HIT", "fresh from origin")
}

// objectHash returns the Redis key of the one object stored in rdb: the hash under
// tiers.KeyPrefix whose name is a {hash tag} alone (its lock and hot marker add a suffix).
func objectHash(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), tiers.KeyPrefix+"{*}").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("object hashes in Redis: %q, %v; want one", keys, err)
	}
	return keys[0]
}

func TestRedisOutageNeverBecomesClientTrouble(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "body of "+r.URL.Path)
	})
	env := map[string]string{"SWR_REDIS_URL": rs.URL()}
	a := startProxy(t, o.URL, env)
	b := startProxy(t, o.URL, env)
	expect(t, get(t, a.URL+"/warm"), 200, "MISS", "body of /warm")

	rs.Stop()
	for i := range 20 {
		expect(t, get(t, a.URL+"/warm"), 200, "HIT", "body of /warm")
		r := get(t, a.URL+"/cold"+strconv.Itoa(i))
		if r.StatusCode != 200 || r.Body != "body of /cold"+strconv.Itoa(i) {
			t.Fatalf("miss during the outage: %d %q", r.StatusCode, trim(r.Body))
		}
	}

	rs.Restart()
	// Within seconds the L2 is used again: what B stores, A finds there.
	testenv.WaitFor(t, 10*time.Second, "L2 to be used again", func() bool {
		path := "/after-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		if get(t, b.URL+path).Header.Get("X-Cache") != "MISS" {
			return false
		}
		return get(t, a.URL+path).Header.Get("Cache-Status") == "swrproxy; hit; detail=l2"
	})
}
