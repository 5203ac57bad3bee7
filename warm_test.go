package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/tiers"
)

func testAnInstanceStartedLaterServesTheFleetsHotKeysFromL1AtOnce(t *testing.T, srv redistest.Topology) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprintf(w, "item %s", r.URL.Path)
	})
	env := map[string]string{"SWR_REDIS_URL": srv.URL(), "SWR_REDIS_MASTER_NAME": srv.MasterName(), "SWR_REDIS_SENTINEL_PASSWORD": srv.SentinelPassword(), "SWR_INVALIDATE_SECRET": secret, "SWR_REFRESH_WINDOW": "4s"}
	a := startProxy(t, o.URL, env)
	const n = 100
	for i := range n {
		expect(t, get(t, fmt.Sprintf("%s/items/%d", a.URL, i)), 200, "MISS", fmt.Sprintf("item /items/%d", i))
	}
	// A shares the keys clients asked for within a second or so (SWR_REFRESH_WINDOW/4).
	testenv.WaitFor(t, 20*time.Second, "the hot set to hold the 100 keys", func() bool {
		return srv.Connect(t).ZCard(context.Background(), tiers.KeyPrefix+"{idx}:hot").Val() == n
	})
	before := o.hits.Load()

	b := startProxy(t, o.URL, env)
	for i := range n {
		r := get(t, fmt.Sprintf("%s/items/%d", b.URL, i))
		if r.Header.Get("X-Cache") != "HIT" || !strings.Contains(r.Header.Get("Cache-Status"), "detail=l1") {
			t.Errorf("B's first request for /items/%d: %s %q, want an L1 hit", i, r.Header.Get("X-Cache"), r.Header.Get("Cache-Status"))
		}
	}
	if got := o.hits.Load(); got != before {
		t.Errorf("the origin got %d requests while B served the fleet's hot keys, want 0", got-before)
	}
	m := get(t, b.URL+"/_swr/metrics").Body
	if !strings.Contains(m, fmt.Sprintf("swrproxy_warm_keys_total %d", n)) {
		t.Errorf("B's metrics lack swrproxy_warm_keys_total %d", n)
	}

	// POST /_swr/populate does it again on demand (nothing left to load), behind the token.
	if status, out := postJSON(t, b.URL+"/_swr/populate", secret, ""); status != 200 || out["keys"] != float64(0) {
		t.Errorf("populate: %d %v, want 200 with 0 keys (all in L1 already)", status, out)
	}
	if status, _ := postJSON(t, b.URL+"/_swr/populate", "", ""); status != 401 {
		t.Errorf("populate without the token: %d, want 401", status)
	}
	off := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": srv.URL(), "SWR_REDIS_MASTER_NAME": srv.MasterName(), "SWR_REDIS_SENTINEL_PASSWORD": srv.SentinelPassword(), "SWR_INVALIDATE_SECRET": secret, "SWR_WARM_BYTES": "0"})
	if status, _ := postJSON(t, off.URL+"/_swr/populate", secret, ""); status != 404 {
		t.Errorf("populate with SWR_WARM_BYTES=0: %d, want 404", status)
	}
	noRedis := startProxy(t, o.URL, map[string]string{"SWR_INVALIDATE_SECRET": secret})
	if status, _ := postJSON(t, noRedis.URL+"/_swr/populate", secret, ""); status != 404 {
		t.Errorf("populate without Redis: %d, want 404 (no fleet hot set)", status)
	}
	if r := get(t, off.URL+"/items/1"); r.Header.Get("Cache-Status") == "" || strings.Contains(r.Header.Get("Cache-Status"), "detail=l1") {
		t.Errorf("an instance without warm start served /items/1 from L1: %q", r.Header.Get("Cache-Status"))
	}
}
