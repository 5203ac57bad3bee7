package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/internal/wasmtest"
	"github.com/swrproxy/swrproxy/policy/wasm"
)

// wasmModule builds the module of the package dir into a file for SWR_POLICY_WASM and compiles it
// once into the tests' compilation cache, so that swrproxy's own load is quick.
func wasmModule(t *testing.T, dir string) string {
	t.Helper()
	file := wasmtest.File(t, dir)
	m, err := wasm.Load(context.Background(), file, wasm.Options{Pool: 1, Cache: wasmtest.Cache})
	if err != nil {
		t.Fatal(err)
	}
	m.Close(context.Background())
	return file
}

// The example module of examples/policy, end to end: on_request adds X-Policy towards the origin
// and keys /api/prices on X-Region; on_response makes a 200 there fresh for 2 s (over the
// origin's max-age=0), tags it and adds X-Policy for the client.
func TestTheExampleWasmPolicyChangesTheTTLAndAddsAField(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Policy")+"/"+r.Header.Get("X-Region"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=0")
		w.Write([]byte("price " + r.Header.Get("X-Region")))
	})
	in := startProxy(t, o.URL, map[string]string{"SWR_POLICY_WASM": wasmModule(t, "examples/policy"), "SWR_POLICY_TIMEOUT": "5s",
		"SWR_INVALIDATE_SECRET": secret})
	r := get(t, in.URL+"/api/prices", "X-Region", "eu")
	expect(t, r, 200, "MISS", "price eu")
	if r.Header.Get("X-Policy") != "example" {
		t.Errorf("reply fields %v, want X-Policy: example from on_response", r.Header)
	}
	expect(t, get(t, in.URL+"/api/prices", "X-Region", "eu"), 200, "HIT", "price eu")
	expect(t, get(t, in.URL+"/api/prices", "X-Region", "us"), 200, "MISS", "price us") // key_add: its own entry
	mu.Lock()
	if strings.Join(seen, ",") != "example/eu,example/us" {
		t.Errorf("the origin saw X-Policy/X-Region %q", seen)
	}
	mu.Unlock()
	info := get(t, in.URL+"/_swr/policy", "Authorization", "Bearer "+secret).Body
	if !strings.Contains(info, `"hooks":["on_request","on_response"]`) || !strings.Contains(info, `"module_hash":"`) {
		t.Errorf("GET /_swr/policy = %s", info)
	}
	// X-Bypass: 1 makes on_request bypass the cache.
	expect(t, get(t, in.URL+"/api/prices", "X-Region", "eu", "X-Bypass", "1"), 200, "BYPASS", "price eu")
}

// A module that loops is cut at SWR_POLICY_TIMEOUT, one that traps is stopped, and either way the
// request is answered as without the hook; the failures are counted by hook and reason.
func TestAFailingWasmHookNeverFailsTheRequest(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("ok " + r.URL.Path))
	})
	module := wasmModule(t, "policy/wasm/testdata/faulty")
	in := startProxy(t, o.URL, map[string]string{"SWR_POLICY_WASM": module, "SWR_POLICY_TIMEOUT": "500ms", "SWR_POLICY_POOL": "1",
		"SWR_POLICY_FILE": writePolicy(t, "rules:\n  - {response_headers: {set: {X-Rules: kept}}}\n"), "SWR_INVALIDATE_SECRET": secret})
	for _, p := range []string{"/loop", "/panic", "/garbage", "/badkey"} {
		r := get(t, in.URL+p)
		expect(t, r, 200, "MISS", "ok "+p)
		if r.Header.Get("X-Rules") != "kept" {
			t.Errorf("%s: the rules file's edit is missing: %v", p, r.Header)
		}
	}
	// The replaced instance serves the next call: X-Faulty: no reaches the origin's request
	// (invisible here), and the request is answered.
	testenv.WaitFor(t, 30*time.Second, "a working instance again", func() bool {
		return get(t, in.URL+"/fine").StatusCode == 200
	})
	m := get(t, in.URL+"/_swr/metrics").Body
	for _, want := range []string{`swrproxy_policy_errors_total{hook="on_request",reason="timeout"} 1`,
		`swrproxy_policy_errors_total{hook="on_request",reason="trap"} 1`, `swrproxy_policy_errors_total{hook="on_request",reason="bad_output"} 2`} {
		if !strings.Contains(m, want) {
			t.Errorf("/_swr/metrics lacks %s", want)
		}
	}

	// A broken module is rejected on reload; the one in force stays.
	os.WriteFile(module, []byte("not wasm"), 0o600)
	status, out := postJSON(t, in.URL+"/_swr/policy/reload", secret, "")
	if msg, _ := out["error"].(string); status != 422 || !strings.Contains(msg, module) {
		t.Errorf("reload of a broken module: %d %v", status, out)
	}
	if r := get(t, in.URL+"/panic2"); r.StatusCode != 200 {
		t.Errorf("after a rejected reload: %d", r.StatusCode)
	}
}

func TestARefreshSendsTheFieldsTheHookSetOnTheFill(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Policy")+"/"+r.Header.Get("X-Region"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("price " + r.Header.Get("X-Region")))
	})
	in := startProxy(t, o.URL, map[string]string{"SWR_POLICY_WASM": wasmModule(t, "examples/policy"), "SWR_POLICY_TIMEOUT": "5s",
		"SWR_INVALIDATE_SECRET": secret})
	expect(t, get(t, in.URL+"/api/prices", "X-Region", "eu"), 200, "MISS", "price eu")
	// Two refreshes in a row: the refreshed entry keeps the fields for the next one too.
	for i := 2; i <= 3; i++ {
		if status, out := postJSON(t, in.URL+"/_swr/invalidate", secret, `{"keys":["/api/prices"],"mode":"refresh"}`); status != 200 || out["refreshing"] != float64(1) {
			t.Fatalf("invalidate: %d %v", status, out)
		}
		testenv.WaitFor(t, 10*time.Second, "the refresh", func() bool { return o.hits.Load() >= int64(i) })
		testenv.WaitFor(t, 10*time.Second, "the refreshed entry", func() bool {
			return get(t, in.URL+"/api/prices", "X-Region", "eu").Header.Get("X-Cache") == "HIT"
		})
	}
	if r := get(t, in.URL+"/api/prices", "X-Region", "eu"); r.Body != "price eu" {
		t.Errorf("after refreshes, a client with X-Region: eu is served %s %q; want \"price eu\"", r.Header.Get("X-Cache"), r.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if s != "example/eu" {
			t.Errorf("the origin saw %q (X-Policy/X-Region) among %q: every request must carry the hook's fields", s, seen)
		}
	}
}

func TestOnResponseSeesTheDecodedPathSoAnEncodedPrivatePathIsNotStored(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("private page"))
	})
	in := startProxy(t, o.URL, map[string]string{"SWR_POLICY_WASM": wasmModule(t, "examples/policy"), "SWR_POLICY_TIMEOUT": "5s"})
	for _, path := range []string{"/private/x", "/%70rivate/y", "/priv%61te/z"} {
		get(t, in.URL+path)
		if r := get(t, in.URL+path); r.Header.Get("X-Cache") == "HIT" {
			t.Errorf("%s was stored: the example's on_response says cache: false under /private/", path)
		}
	}
}
