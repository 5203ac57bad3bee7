package main

// The origin's pool under key_hash, end to end: each key goes to one backend, the same from every
// instance, and a backend going down moves only its own keys.

import (
	"fmt"
	"maps"
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

func TestKeyHashSendsEachKeyToOneBackendFromEveryInstance(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	const keys = 90
	var mu sync.Mutex
	seen := map[string][]int{} // path → the backend of each request for it
	origins := make([]*origin, 3)
	urls := make([]string, len(origins))
	for i := range origins {
		origins[i] = newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			if isHealthCheck(r) {
				return
			}
			mu.Lock()
			seen[r.URL.Path] = append(seen[r.URL.Path], i)
			mu.Unlock()
			w.Header().Set("Cache-Control", "no-store") // every request reaches a backend
			fmt.Fprint(w, "ok")
		})
		urls[i] = origins[i].URL
	}
	env := map[string]string{"SWR_REDIS_URL": rs.URL(), "SWR_UPSTREAM_BALANCE": "key_hash"}
	insts := []*instance{startProxy(t, strings.Join(urls, ","), env), startProxy(t, strings.Join(urls, ","), env)}

	paths := make(chan string)
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 8 {
		wg.Go(func() {
			for p := range paths {
				for _, in := range insts {
					if r := do(http.MethodGet, in.URL+p); r.StatusCode != http.StatusOK {
						failures.Add(1)
					}
				}
			}
		})
	}
	for k := range keys {
		paths <- "/k/" + strconv.Itoa(k)
	}
	close(paths)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d requests failed", n)
	}

	perBackend := make([]int, len(origins))
	for k := range keys {
		p := "/k/" + strconv.Itoa(k)
		got := seen[p]
		if len(got) != len(insts) {
			t.Errorf("%s reached the backends %d times, want once from each of %d instances", p, len(got), len(insts))
			continue
		}
		for _, b := range got[1:] {
			if b != got[0] {
				t.Errorf("%s reached backends %v, want one backend from every instance", p, got)
				break
			}
		}
		perBackend[got[0]]++
	}
	for i, n := range perBackend {
		if n == 0 {
			t.Errorf("backend %d got none of the %d keys (keys per backend: %v)", i, keys, perBackend)
		}
	}
	t.Logf("keys per backend: %v", perBackend)
}

func TestKeyHashMovesOnlyTheKeysOfABackendThatGoesDown(t *testing.T) {
	t.Parallel()
	const keys = 60
	var mu sync.Mutex
	last := map[string]int{} // path → the backend of its latest request
	origins := make([]*origin, 3)
	urls := make([]string, len(origins))
	for i := range origins {
		origins[i] = newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			if isHealthCheck(r) {
				return
			}
			mu.Lock()
			last[r.URL.Path] = i
			mu.Unlock()
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprint(w, "ok")
		})
		urls[i] = origins[i].URL
	}
	var logs syncBuffer
	p := startProxyLogging(t, strings.Join(urls, ","), healthEnv("SWR_UPSTREAM_BALANCE", "key_hash"), &logs)
	owners := func() map[string]int {
		for k := range keys {
			expect(t, get(t, p.URL+"/k/"+strconv.Itoa(k)), 200, "BYPASS", "ok")
		}
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(last)
	}
	before := owners()
	origins[0].Close() // connections refused
	testenv.WaitFor(t, 5*time.Second, "the closed backend to be marked down", func() bool { return logged(&logs, "backend down", origins[0].URL) })
	after := owners()
	moved := 0
	for k, was := range before {
		switch now := after[k]; {
		case was == 0 && now != 0:
			moved++
		case was != 0 && now != was:
			t.Errorf("%s moved from backend %d to %d, though only backend 0 went down", k, was, now)
		}
	}
	if moved == 0 {
		t.Errorf("no key of the closed backend moved: did it hold any? owners %v", before)
	}
	t.Logf("%d of %d keys moved", moved, keys)
}
