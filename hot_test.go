package main

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

// TestHotKeyStaysWarmAcrossTwoInstances is the proof the refresh workers owe: 20 clients spread
// over 2 instances poll a key with max-age=2 every 200ms for 20s against an origin that takes
// 300ms. After the first request every reply is a HIT, the origin sees about one request per 2s
// period in total, and once polling stops the key stops being refreshed within one refresh window.
func TestHotKeyStaysWarmAcrossTwoInstances(t *testing.T) {
	rs := redistest.Start(t)
	var version atomic.Int64
	t0 := time.Now()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("SWR_TEST_LOG") != "" {
			t.Logf("origin request at %v: %s %s", time.Since(t0).Round(time.Millisecond), r.Header.Get("If-None-Match"), r.RemoteAddr)
		}
		time.Sleep(300 * time.Millisecond)
		w.Header().Set("Cache-Control", "max-age=2")
		fmt.Fprintf(w, "v%d", version.Add(1))
	})
	env := map[string]string{"SWR_REDIS_URL": rs.URL(), "SWR_REFRESH_WINDOW": "3s"}
	insts := []*instance{startProxy(t, o.URL, env), startProxy(t, o.URL, env)}
	expect(t, get(t, insts[0].URL+"/hot"), 200, "MISS", "v1")

	const clients, every = 20, 200 * time.Millisecond
	poll := pollFor()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		bad     []string
		slowest time.Duration
		count   int
	)
	stop := time.Now().Add(poll)
	for i := range clients {
		wg.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			for time.Now().Before(stop) {
				start := time.Now()
				r := do(http.MethodGet, insts[i%2].URL+"/hot")
				took := time.Since(start)
				mu.Lock()
				count++
				slowest = max(slowest, took)
				if r.StatusCode != 200 || r.Header.Get("X-Cache") != "HIT" {
					bad = append(bad, fmt.Sprintf("%d %s %s", r.StatusCode, r.Header.Get("X-Cache"), r.Header.Get("Cache-Status")))
				}
				mu.Unlock()
				<-tick.C
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d of %d replies were not HITs, e.g. %q", len(bad), count, bad[:min(5, len(bad))])
	}
	if slowest >= 300*time.Millisecond {
		t.Errorf("slowest reply took %v: a client waited on the origin", slowest)
	}
	// One refresh per 2s period in total (not per client or instance): about 10 in 20s, allowing
	// for the lead time that starts each refresh before the entry goes stale.
	fetched := o.hits.Load() - 1
	if fetched < 7 || fetched > 16 {
		t.Errorf("origin saw %d refreshes in %v, want about %v", fetched, poll, poll/(2*time.Second))
	}
	t.Logf("%d replies, all HIT: %v; origin refreshes: %d; slowest reply %v", count, len(bad) == 0, fetched, slowest)

	// Polling stopped: within one refresh window (3s) plus a period the refreshes stop.
	time.Sleep(3*time.Second + 2500*time.Millisecond)
	settled := o.hits.Load()
	time.Sleep(4 * time.Second)
	if n := o.hits.Load(); n != settled {
		t.Errorf("origin still refreshed a cold key: %d more requests after polling stopped", n-settled)
	}
}

func pollFor() time.Duration {
	if s := os.Getenv("SWR_TEST_POLL"); s != "" {
		d, _ := time.ParseDuration(s)
		return d
	}
	return 20 * time.Second
}
