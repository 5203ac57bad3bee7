package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/config"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// writePolicy writes a rules file for SWR_POLICY_FILE and returns its path.
func writePolicy(t *testing.T, rules string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestPolicyTTLOverridesTheOriginsMaxAge(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0")
		w.Write([]byte("price"))
	})
	in := startProxy(t, o.URL, map[string]string{"SWR_POLICY_FILE": writePolicy(t, `
rules:
  - match: {path_prefix: /api/prices}
    ttl: 1h
`)})
	expect(t, get(t, in.URL+"/api/prices"), 200, "MISS", "price")
	expect(t, get(t, in.URL+"/api/prices"), 200, "HIT", "price")
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hit %d times; the rule's ttl should have kept the max-age=0 copy fresh", n)
	}
	// Other paths keep the origin's word.
	expect(t, get(t, in.URL+"/other"), 200, "MISS", "price")
	if r := get(t, in.URL+"/other"); r.Header.Get("X-Cache") == "HIT" {
		t.Errorf("a path no rule matches was served fresh despite max-age=0")
	}
}

func TestPolicyIgnoredAndSortedParametersShareOneEntryAndNeverReachTheOrigin(t *testing.T) {
	var targets sync.Map
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		targets.Store(r.URL.RequestURI(), true)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("pair " + r.URL.Query().Get("pair")))
	})
	in := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": redistest.Start(t).URL(), "SWR_INVALIDATE_SECRET": secret, "SWR_POLICY_FILE": writePolicy(t, `
rules:
  - match: {path: "/api/*"}
    key: {ignore_query: ["utm_*", "_"], sort_query: true}
`)})
	expect(t, get(t, in.URL+"/api/prices?pair=A&utm_source=x&_=1"), 200, "MISS", "pair A")
	expect(t, get(t, in.URL+"/api/prices?_=2&pair=A"), 200, "HIT", "pair A")
	expect(t, get(t, in.URL+"/api/prices?utm_medium=mail&pair=A&_=3"), 200, "HIT", "pair A")
	// two kept parameters, in either order, share one entry too
	expect(t, get(t, in.URL+"/api/prices?z=1&pair=B&utm_x=1"), 200, "MISS", "pair B")
	expect(t, get(t, in.URL+"/api/prices?pair=B&z=1"), 200, "HIT", "pair B")
	if n := o.hits.Load(); n != 2 {
		t.Errorf("origin hit %d times, want 2 (one per entry)", n)
	}
	targets.Range(func(k, _ any) bool {
		if k != "/api/prices?pair=A" && k != "/api/prices?pair=B&z=1" {
			t.Errorf("origin was asked for %q, want only the keys' targets /api/prices?pair=A and ?pair=B&z=1", k)
		}
		return true
	})
	// PURGE names the same entry, whatever ignored parameters the URL carries.
	req, _ := http.NewRequest("PURGE", in.URL+"/api/prices?pair=A&utm_campaign=z", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	res, err := client.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("PURGE: %v %v", res, err)
	}
	res.Body.Close()
	expect(t, get(t, in.URL+"/api/prices?pair=A"), 200, "MISS", "pair A")
}

func TestPolicyBypassStreamsAndNeverStores(t *testing.T) {
	release := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write([]byte("first part;"))
		w.(http.Flusher).Flush()
		<-release
		w.Write([]byte("second part"))
	})
	in := startProxy(t, o.URL, map[string]string{"SWR_POLICY_FILE": writePolicy(t, `
rules:
  - match: {path_prefix: /live/}
    cache: false
`)})
	res, err := client.Get(in.URL + "/live/feed")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("X-Cache") != "BYPASS" || !strings.Contains(res.Header.Get("Cache-Status"), "detail=policy") {
		t.Errorf("X-Cache %q, Cache-Status %q", res.Header.Get("X-Cache"), res.Header.Get("Cache-Status"))
	}
	buf := make([]byte, len("first part;"))
	if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "first part;" {
		t.Fatalf("the first part did not arrive before the origin finished: %q %v", buf, err)
	}
	close(release)
	rest, _ := io.ReadAll(res.Body)
	if string(rest) != "second part" {
		t.Errorf("rest %q", rest)
	}
	expect(t, get(t, in.URL+"/live/feed"), 200, "BYPASS", "first part;second part")
	if n := o.hits.Load(); n != 2 {
		t.Errorf("origin hit %d times, want 2 (never stored)", n)
	}
}

func TestPolicyHeaderEditsReachTheOriginAndTheClient(t *testing.T) {
	var seen atomic.Pointer[http.Header]
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		seen.Store(&h)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Server", "origin/1.2.3")
		w.Header().Set("Set-Cookie", "tracking=1")
		w.Write([]byte("page"))
	})
	in := startProxy(t, o.URL, map[string]string{"SWR_POLICY_FILE": writePolicy(t, `
rules:
  - match: {path_prefix: /pages/}
    request_headers: {set: {X-Via: swrproxy}, remove: [X-Debug]}
    strip_cookies: true
    response_headers: {set: {X-Frame-Options: DENY}, remove: [Server, Set-Cookie]}
`)})
	for i, want := range []string{"MISS", "HIT"} {
		r := get(t, in.URL+"/pages/home", "X-Debug", "1", "Cookie", "session=s1")
		expect(t, r, 200, want, "page")
		if r.Header.Get("X-Frame-Options") != "DENY" || r.Header.Get("Server") != "" || r.Header.Get("Set-Cookie") != "" {
			t.Errorf("reply %d fields: %v", i, r.Header)
		}
	}
	h := *seen.Load()
	if h.Get("X-Via") != "swrproxy" || h.Get("X-Debug") != "" || h.Get("Cookie") != "" {
		t.Errorf("the origin saw %v", h)
	}
	// The same edits on a pass-through.
	r := do(http.MethodPost, in.URL+"/pages/form", "X-Debug", "1", "Cookie", "session=s1")
	if r.StatusCode != 200 || r.Header.Get("X-Frame-Options") != "DENY" || r.Header.Get("Server") != "" {
		t.Errorf("POST reply %d %v", r.StatusCode, r.Header)
	}
	if h := *seen.Load(); h.Get("X-Via") != "swrproxy" || h.Get("X-Debug") != "" || h.Get("Cookie") != "" {
		t.Errorf("the origin saw on a POST %v", h)
	}
}

func TestPolicyTagsFromPathSegmentsPurgeByTag(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write([]byte(r.URL.Path))
	})
	rs := redistest.Start(t)
	env := map[string]string{"SWR_REDIS_URL": rs.URL(), "SWR_INVALIDATE_SECRET": secret, "SWR_POLICY_FILE": writePolicy(t, `
rules:
  - match: {path: "/assets/*/*"}
    tags: ["asset-{2}", "assets"]
`)}
	a, b := startProxy(t, o.URL, env), startProxy(t, o.URL, env)
	for _, p := range []string{"/assets/31566704/logo.png", "/assets/31566704/icon.png", "/assets/42/logo.png"} {
		expect(t, get(t, a.URL+p), 200, "MISS", p)
		expect(t, get(t, b.URL+p), 200, "HIT", p)
	}
	status, out := postJSON(t, a.URL+"/_swr/invalidate", secret, `{"tags":["asset-31566704"],"mode":"clear"}`)
	if status != 200 || out["matched"] != float64(2) {
		t.Fatalf("invalidate: %d %v", status, out)
	}
	expect(t, get(t, b.URL+"/assets/31566704/logo.png"), 200, "MISS", "/assets/31566704/logo.png")
	expect(t, get(t, b.URL+"/assets/42/logo.png"), 200, "HIT", "/assets/42/logo.png")
}

func TestPolicyReloadSwapsAtomicallyAndABrokenFileKeepsTheOldPolicy(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=0")
		w.Header().Set("X-Seen", r.Header.Get("X-Want")) // what the request's policy sent
		w.Write([]byte("v"))
	})
	// Each policy edits both the request (X-Want, echoed as X-Seen) and the response (X-Policy):
	// a request that used one policy from start to end has X-Seen == X-Policy.
	rules := func(name string) string {
		return "rules:\n  - name: " + name + "\n    request_headers: {set: {X-Want: " + name + "}}\n    response_headers: {set: {X-Policy: " + name + "}}\n    cache: false\n"
	}
	file := writePolicy(t, rules("one"))
	in := startProxy(t, o.URL, map[string]string{"SWR_INVALIDATE_SECRET": secret, "SWR_POLICY_FILE": file})
	if r := get(t, in.URL+"/x"); r.Header.Get("X-Policy") != "one" {
		t.Fatalf("X-Policy %q before reload", r.Header.Get("X-Policy"))
	}
	info := func() map[string]any {
		r := get(t, in.URL+"/_swr/policy", "Authorization", "Bearer "+secret)
		var out map[string]any
		if err := json.Unmarshal([]byte(r.Body), &out); err != nil || r.StatusCode != 200 {
			t.Fatalf("GET /_swr/policy: %d %s", r.StatusCode, r.Body)
		}
		return out
	}
	before := info()
	if before["file"] != file || len(before["file_hash"].(string)) != 64 || fmt.Sprint(before["rules"]) != "[one]" {
		t.Errorf("GET /_swr/policy = %v", before)
	}

	// Requests keep flowing while the file changes and is reloaded many times: each gets one
	// whole policy or the other, and every one succeeds.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed, mixed atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := do(http.MethodGet, in.URL+"/x")
				switch {
				case r.StatusCode != 200:
					failed.Add(1)
				case r.Header.Get("X-Policy") != "one" && r.Header.Get("X-Policy") != "two", r.Header.Get("X-Seen") != r.Header.Get("X-Policy"):
					mixed.Add(1)
				}
			}
		})
	}
	for i := range 10 {
		name := []string{"one", "two"}[i%2]
		os.WriteFile(file, []byte(rules(name)), 0o600)
		if status, out := postJSON(t, in.URL+"/_swr/policy/reload", secret, ""); status != 200 {
			t.Fatalf("reload: %d %v", status, out)
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || mixed.Load() > 0 {
		t.Errorf("during reloads: %d failed, %d without a whole policy", failed.Load(), mixed.Load())
	}
	if r := get(t, in.URL+"/x"); r.Header.Get("X-Policy") != "two" {
		t.Errorf("after the last reload X-Policy %q, want two", r.Header.Get("X-Policy"))
	}

	// A broken file is rejected with its line and field; the policy in force stays.
	os.WriteFile(file, []byte("rules:\n  - name: three\n    ttl: soon\n"), 0o600)
	status, out := postJSON(t, in.URL+"/_swr/policy/reload", secret, "")
	if msg, _ := out["error"].(string); status != 422 || !strings.Contains(msg, file+":3:") || !strings.Contains(msg, "rules[0].ttl") {
		t.Errorf("reload of a broken file: %d %v", status, out)
	}
	if r := get(t, in.URL+"/x"); r.Header.Get("X-Policy") != "two" {
		t.Errorf("after a rejected reload X-Policy %q, want two", r.Header.Get("X-Policy"))
	}
	after := info()
	if after["reloads"] != float64(10) || after["reload_failures"] != float64(1) || !strings.Contains(fmt.Sprint(after["last_error"]), "ttl") {
		t.Errorf("GET /_swr/policy after a rejected reload = %v", after)
	}
	m := get(t, in.URL+"/_swr/metrics").Body
	for _, want := range []string{`swrproxy_policy_reloads_total{result="ok"} 10`, `swrproxy_policy_reloads_total{result="rejected"} 1`,
		`swrproxy_policy_errors_total{hook="on_response",reason="timeout"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("/_swr/metrics lacks %s", want)
		}
	}
	// Without the Bearer token the reload is refused.
	if status, _ := postJSON(t, in.URL+"/_swr/policy/reload", "", ""); status != 401 {
		t.Errorf("reload without a token: %d, want 401", status)
	}
}

func TestPolicyReloadsOnSIGHUP(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("v")) })
	file := writePolicy(t, "rules:\n  - {cache: false, response_headers: {set: {X-Policy: one}}}\n")
	in := startProxy(t, o.URL, map[string]string{"SWR_POLICY_FILE": file})
	os.WriteFile(file, []byte("rules:\n  - {cache: false, response_headers: {set: {X-Policy: two}}}\n"), 0o600)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the policy reloaded on SIGHUP", func() bool {
		return get(t, in.URL+"/x").Header.Get("X-Policy") == "two"
	})
}

func TestABadPolicyFileStopsStartUpNamingTheFileLineAndField(t *testing.T) {
	file := writePolicy(t, "rules:\n  - match: {path: /a}\n    key: {ignore_query: [utm_*], sort_query: maybe}\n")
	cfg, err := config.LoadLookup(func(k string) (string, bool) {
		v, ok := map[string]string{"SWR_UPSTREAM": "http://127.0.0.1:1", "SWR_REDIS_URL": "", "SWR_LISTEN": "127.0.0.1:0", "SWR_POLICY_FILE": file}[k]
		return v, ok
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), cfg, testLogger(t), nil)
	if err == nil || !strings.Contains(err.Error(), file+":3:") || !strings.Contains(err.Error(), "rules[0].key.sort_query") {
		t.Fatalf("run = %v, want the file, line 3 and rules[0].key.sort_query", err)
	}
	// A host rule without the host in the key.
	os.WriteFile(file, []byte("rules:\n  - match: {host: a.example}\n    ttl: 1s\n"), 0o600)
	err = run(context.Background(), cfg, testLogger(t), nil)
	if err == nil || !strings.Contains(err.Error(), "SWR_KEY_HOST") || !strings.Contains(err.Error(), file+":2:") {
		t.Fatalf("run = %v, want a host rule refused without SWR_KEY_HOST", err)
	}
}

func TestPolicyKeyedHeaderVariantsAreRefreshedAndInvalidatedTogether(t *testing.T) {
	var regions sync.Map
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		regions.Store(r.Header.Get("X-Region")+"|"+r.Header.Get("Cookie"), true)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("region " + r.Header.Get("X-Region") + " " + r.Header.Get("Cookie")))
	})
	in := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": redistest.Start(t).URL(), "SWR_INVALIDATE_SECRET": secret, "SWR_POLICY_FILE": writePolicy(t, `
rules:
  - match: {path_prefix: /dash}
    key: {include_headers: [X-Region], include_cookies: [currency]}
`)})
	expect(t, get(t, in.URL+"/dash", "X-Region", "eu", "Cookie", "session=s1; currency=EUR"), 200, "MISS", "region eu currency=EUR")
	expect(t, get(t, in.URL+"/dash", "X-Region", "us", "Cookie", "currency=USD"), 200, "MISS", "region us currency=USD")
	expect(t, get(t, in.URL+"/dash", "X-Region", "eu", "Cookie", "currency=EUR; session=s2"), 200, "HIT", "region eu currency=EUR")
	if _, ok := regions.Load("eu|session=s1; currency=EUR"); ok {
		t.Error("the origin saw a cookie the key does not hold")
	}
	// A refresh (mode refresh) asks again with the keyed values, for each variant.
	status, out := postJSON(t, in.URL+"/_swr/invalidate", secret, `{"keys":["/dash"],"mode":"refresh"}`)
	if status != 200 || out["matched"] != float64(2) {
		t.Fatalf("refresh by key: %d %v, want both variants matched", status, out)
	}
	testenv.WaitFor(t, 10*time.Second, "both variants refreshed", func() bool { return o.hits.Load() == 4 })
	for _, k := range []string{"eu|currency=EUR", "us|currency=USD"} {
		if _, ok := regions.Load(k); !ok {
			t.Errorf("no origin request with %s", k)
		}
	}
	// Clearing the key clears every variant.
	if status, out := postJSON(t, in.URL+"/_swr/invalidate", secret, `{"keys":["/dash"],"mode":"clear"}`); status != 200 || out["cleared"] != float64(2) {
		t.Fatalf("clear by key: %d %v", status, out)
	}
	expect(t, get(t, in.URL+"/dash", "X-Region", "us", "Cookie", "currency=USD"), 200, "MISS", "region us currency=USD")
}
