package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/swrproxy/swrproxy/internal/redistest"
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
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin hit %d times, want 1", n)
	}
	targets.Range(func(k, _ any) bool {
		if k != "/api/prices?pair=A" {
			t.Errorf("origin was asked for %q, want only the key's target /api/prices?pair=A", k)
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

