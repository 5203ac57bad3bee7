package main

// Invalidation, end to end: purges by key, prefix and tag reach every instance before the reply, soft
// purges serve stale until renewed, and a successful unsafe request invalidates the GET.

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// versionedOrigin serves "<path> v<N>" with max-age=60 and the Surrogate-Key of the path's
// second segment; bump makes every body change.
type versionedOrigin struct {
	*origin
	version atomic.Int64
}

func newVersionedOrigin(t *testing.T) *versionedOrigin { return newSlowVersionedOrigin(t, 0) }

func newSlowVersionedOrigin(t *testing.T, delay time.Duration) *versionedOrigin {
	v := &versionedOrigin{}
	v.version.Store(1)
	v.origin = newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay) // a slow origin, when delay is set
		w.Header().Set("Cache-Control", "max-age=60")
		if parts := strings.Split(r.URL.Path, "/"); len(parts) > 2 {
			w.Header().Set("Surrogate-Key", "all "+parts[2])
		}
		fmt.Fprintf(w, "%s v%d", r.URL.Path, v.version.Load())
	})
	return v
}

func testInvalidationReachesEveryInstanceBeforeTheReply(t *testing.T, rs redistest.Topology) {
	o := newSlowVersionedOrigin(t, 150*time.Millisecond) // slow enough that a soft purge shows STALE
	env := map[string]string{"SWR_REDIS_URL": rs.URL(), "SWR_REDIS_MASTER_NAME": rs.MasterName(), "SWR_REDIS_SENTINEL_PASSWORD": rs.SentinelPassword(), "SWR_INVALIDATE_SECRET": secret}
	insts := []*instance{startProxy(t, o.URL, env), startProxy(t, o.URL, env), startProxy(t, o.URL, env)}
	testenv.WaitFor(t, 5*time.Second, "3 live instances", func() bool {
		_, st := getStats(t, insts[0])
		return st["instances_live"] == float64(3)
	})

	for _, mode := range []string{"clear", "refresh", "auto"} {
		t.Run(mode, func(t *testing.T) {
			path := "/k/" + mode
			old := fmt.Sprintf("%s v%d", path, o.version.Load())
			for _, in := range insts {
				if r := get(t, in.URL+path); r.Body != old {
					t.Fatalf("warm-up body %q", r.Body)
				}
			}
			type seen struct {
				sent         time.Time
				body, xcache string
			}
			var (
				mu    sync.Mutex
				log   []seen
				stop  atomic.Bool
				wg    sync.WaitGroup
				polls atomic.Int64
			)
			for i := range 6 {
				wg.Go(func() {
					for !stop.Load() {
						sent := time.Now()
						r := do(http.MethodGet, insts[i%3].URL+path)
						polls.Add(1)
						mu.Lock()
						log = append(log, seen{sent, r.Body, r.Header.Get("X-Cache")})
						mu.Unlock()
						time.Sleep(5 * time.Millisecond) // a client polling every 5 ms
					}
				})
			}
			testenv.WaitFor(t, 5*time.Second, "every poller to have polled twice", func() bool { return polls.Load() >= 12 })
			o.version.Add(1)
			newBody := fmt.Sprintf("%s v%d", path, o.version.Load())
			status, res := postJSON(t, insts[1].URL+"/_swr/invalidate", secret, fmt.Sprintf(`{"keys":[%q],"mode":%q}`, path, mode))
			replied := time.Now()
			if status != 200 || res["acknowledged"] != float64(3) || res["instances"] != float64(3) || res["complete"] != true || res["matched"] != float64(1) {
				t.Fatalf("reply %d %v, want 3 of 3 acknowledged", status, res)
			}
			if mode == "clear" && res["cleared"] != float64(1) || mode != "clear" && res["refreshing"] != float64(1) {
				t.Errorf("reply %v: wrong action for mode %s (auto on a polled key refreshes)", res, mode)
			}
			testenv.WaitFor(t, 5*time.Second, "every instance to serve the new body", func() bool {
				for _, in := range insts {
					if get(t, in.URL+path).Body != newBody {
						return false
					}
				}
				return true
			})
			// Keep polling a little: an old body must not come back once the new one is served.
			more := polls.Load() + 12
			testenv.WaitFor(t, 5*time.Second, "every poller to poll twice more", func() bool { return polls.Load() >= more })
			stop.Store(true)
			wg.Wait()
			stale := 0
			for _, s := range log {
				if !s.sent.After(replied) || s.body != old {
					continue
				}
				// After the reply an old body may only come as STALE, and only in the soft modes.
				if mode == "clear" || s.xcache != "STALE" {
					t.Fatalf("after the reply a client got the old body as %s (mode %s)", s.xcache, mode)
				}
				stale++
			}
			t.Logf("mode %s: %d polls, %d old bodies served as STALE after the reply", mode, polls.Load(), stale)
		})
	}
	// One origin request per invalidated key, not one per instance: 3 modes × (warm-up + renewal).
	if n := o.hits.Load(); n != 6 {
		t.Errorf("origin hits = %d, want 6", n)
	}
}

func testPrefixTagAndAllInvalidationsClearOnlyWhatTheySelect(t *testing.T, topo redistest.Topology) {
	for _, topo := range []redistest.Topology{topo, nil} {
		t.Run(fmt.Sprintf("redis=%v", topo != nil), func(t *testing.T) {
			o := newVersionedOrigin(t)
			env := map[string]string{"SWR_INVALIDATE_SECRET": secret}
			if topo != nil {
				env["SWR_REDIS_URL"], env["SWR_REDIS_MASTER_NAME"], env["SWR_REDIS_SENTINEL_PASSWORD"] = topo.URL(), topo.MasterName(), topo.SentinelPassword()
			}
			p := startProxy(t, o.URL, env)
			paths := []string{"/api/orders/1", "/api/orders/2", "/api/other", "/img/asset-31566704", "/img/x"}
			for _, path := range paths {
				r := get(t, p.URL+path)
				if r.Header.Get("Surrogate-Key") != "" {
					t.Fatalf("Surrogate-Key reached the client: %q", r.Header.Get("Surrogate-Key"))
				}
			}
			status, res := postJSON(t, p.URL+"/_swr/invalidate", secret, `{"prefixes":["/api/orders/"],"mode":"clear"}`)
			if status != 200 || res["matched"] != float64(2) || res["cleared"] != float64(2) {
				t.Fatalf("prefix invalidation: %d %v", status, res)
			}
			status, res = postJSON(t, p.URL+"/_swr/invalidate", secret, `{"tags":["asset-31566704"],"mode":"clear"}`)
			if status != 200 || res["matched"] != float64(1) {
				t.Fatalf("tag invalidation: %d %v", status, res)
			}
			want := map[string]string{"/api/orders/1": "MISS", "/api/orders/2": "MISS", "/api/other": "HIT",
				"/img/asset-31566704": "MISS", "/img/x": "HIT"}
			for _, path := range paths {
				if got := get(t, p.URL+path).Header.Get("X-Cache"); got != want[path] {
					t.Errorf("%s: X-Cache %s, want %s", path, got, want[path])
				}
			}
			status, res = postJSON(t, p.URL+"/_swr/invalidate", secret, `{"all":true,"mode":"clear"}`)
			if status != 200 || res["matched"] != float64(5) {
				t.Fatalf("all: %d %v", status, res)
			}
			for _, path := range paths {
				if got := get(t, p.URL+path).Header.Get("X-Cache"); got != "MISS" {
					t.Errorf("after all: %s X-Cache %s, want MISS", path, got)
				}
			}
		})
	}
}

func TestRefreshModeWithoutRedisServesStaleUntilRenewed(t *testing.T) {
	t.Parallel()
	o := newVersionedOrigin(t)
	p := startProxy(t, o.URL, map[string]string{"SWR_INVALIDATE_SECRET": secret})
	get(t, p.URL+"/soft")
	o.version.Add(1)
	if status, res := postJSON(t, p.URL+"/_swr/invalidate", secret, `{"keys":["/soft"],"mode":"refresh"}`); status != 200 || res["refreshing"] != float64(1) {
		t.Fatalf("refresh: %d %v", status, res)
	}
	testenv.WaitFor(t, 5*time.Second, "the renewed body", func() bool {
		r := get(t, p.URL+"/soft")
		if r.Body == "/soft v1" && r.Header.Get("X-Cache") != "STALE" {
			t.Fatalf("old body served as %s after a soft purge", r.Header.Get("X-Cache"))
		}
		return r.Body == "/soft v2" && r.Header.Get("X-Cache") == "HIT"
	})
	if n := o.hits.Load(); n != 2 {
		t.Errorf("origin hits = %d, want 2", n)
	}
}

func TestAnInvalidationThatCouldNotReachRedisSaysSo(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	o := newVersionedOrigin(t)
	p := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": rs.URL(), "SWR_INVALIDATE_SECRET": secret})
	get(t, p.URL+"/r")
	rs.Stop()
	status, res := postJSON(t, p.URL+"/_swr/invalidate", secret, `{"keys":["/r"],"mode":"clear"}`)
	if status != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(res["error"]), "retry") {
		t.Fatalf("got %d %v, want 503 asking to retry", status, res)
	}
	if strings.Contains(fmt.Sprint(res), rs.Addr()) {
		t.Errorf("the reply %v names Redis's address %s; it belongs in the log", res, rs.Addr())
	}
	if r, _ := res["result"].(map[string]any); r["complete"] != false {
		t.Errorf("result %v, want complete=false", res["result"])
	}
	// This instance dropped its own copy anyway.
	if got := get(t, p.URL+"/r").Header.Get("X-Cache"); got != "MISS" {
		t.Errorf("after the purge X-Cache = %s, want MISS", got)
	}
}
