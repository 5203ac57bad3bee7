package wasm

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/internal/wasmtest"
)

// generous is a call deadline for calls that must succeed under the race detector on a loaded
// machine; the deadline tests set their own.
const generous = 5 * time.Second

func compile(t testing.TB, dir string, o Options) *Module {
	t.Helper()
	o.Cache = wasmtest.Cache
	m, err := Compile(context.Background(), dir, wasmtest.Build(t, dir), o)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func TestTheExampleModuleAnswersAsDocumented(t *testing.T) {
	t.Parallel()
	m := compile(t, "../../examples/policy", Options{Pool: 2, Timeout: generous})
	if !m.Has(OnRequest) || !m.Has(OnResponse) || len(m.Hash()) != 64 {
		t.Fatalf("Has/Hash: %v %v %q", m.Has(OnRequest), m.Has(OnResponse), m.Hash())
	}
	out, err := m.Request(t.Context(), &RequestIn{Method: []byte("GET"), Path: []byte("/api/prices"), Query: []byte("pair=A"),
		Header: Pairs{{"X-Region", "eu"}, {"Accept", `"quoted" \ and \x01`}}})
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	if out.KeyAdd != "region=eu" || out.Bypass || len(out.Set) != 2 || out.Set[0] != [2]string{"X-Policy", "example"} || out.Set[1] != [2]string{"X-Region", "eu"} {
		t.Errorf("on_request = %+v", out)
	}
	out, err = m.Request(t.Context(), &RequestIn{Method: []byte("GET"), Path: []byte("/x"), Header: Pairs{{"X-Bypass", "1"}}})
	if err != nil || !out.Bypass || out.KeyAdd != "" {
		t.Errorf("on_request with X-Bypass = %+v, %v", out, err)
	}
	res, err := m.Response(t.Context(), &ResponseIn{Status: 200, Method: []byte("GET"), Path: []byte("/api/prices"), Header: Pairs{{"Cache-Control", "max-age=60"}}})
	if err != nil || res.TTL == nil || *res.TTL != 2*time.Second || len(res.Tags) != 1 || res.Tags[0] != "prices" || res.NoStore {
		t.Errorf("on_response = %+v, %v", res, err)
	}
	res, err = m.Response(t.Context(), &ResponseIn{Status: 200, Path: []byte("/private/me")})
	if err != nil || !res.NoStore {
		t.Errorf("on_response under /private/ = %+v, %v", res, err)
	}
	res, err = m.Response(t.Context(), &ResponseIn{Status: 404, Path: []byte("/api/prices")})
	if err != nil || res.TTL != nil || res.NoStore {
		t.Errorf("on_response to a 404 = %+v, %v; want no change", res, err)
	}
}

// Each failure of a module is an error with its reason, and the next call is answered: a broken
// instance is replaced.
func TestAFaultyModuleFailsTheCallNeverTheHost(t *testing.T) {
	t.Parallel()
	m := compile(t, "testdata/faulty", Options{Pool: 1, Timeout: 2 * time.Second, MemoryLimit: 32 << 20})
	tests := []struct{ path, reason string }{
		{"/loop", ReasonTimeout},
		{"/panic", ReasonTrap},
		{"/exit", ReasonTrap},
		{"/memhog", ReasonTrap},
		{"/garbage", ReasonBadOutput},
		{"/outside", ReasonBadOutput},
		{"/unknown", ReasonBadOutput},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			start := time.Now()
			_, err := m.Request(t.Context(), &RequestIn{Method: []byte("GET"), Path: []byte(tt.path)})
			if got := reason(err); got != tt.reason {
				t.Fatalf("%s: err %v (reason %q), want reason %q", tt.path, err, got, tt.reason)
			}
			if tt.reason == ReasonTimeout && time.Since(start) > 10*time.Second {
				t.Errorf("the looping call took %v to be cut", time.Since(start))
			}
			// The next call gets a working instance (the replacement, once instantiated).
			var out RequestOut
			testenv.WaitFor(t, 30*time.Second, "an instance that is not busy after "+tt.path, func() bool {
				out, err = m.Request(t.Context(), &RequestIn{Method: []byte("GET"), Path: []byte("/ok")})
				return err == nil || reason(err) != ReasonBusy
			})
			if err != nil || len(out.Set) != 1 || out.Set[0][1] != "no" {
				t.Fatalf("after %s: %+v, %v", tt.path, out, err)
			}
		})
	}
}

func TestABusyPoolAnswersBusyAtTheDeadline(t *testing.T) {
	m := compile(t, "testdata/faulty", Options{Pool: 1, Timeout: 200 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, p := range []string{"/loop", "/loop"} {
		wg.Go(func() { _, errs[i] = m.Request(t.Context(), &RequestIn{Path: []byte(p)}) })
	}
	wg.Wait()
	reasons := reason(errs[0]) + "," + reason(errs[1])
	if reasons != "timeout,busy" && reasons != "busy,timeout" && reasons != "timeout,timeout" {
		t.Errorf("two looping calls on one instance: %v / %v", errs[0], errs[1])
	}
}

func TestConcurrentCallsAllSucceed(t *testing.T) {
	m := compile(t, "../../examples/policy", Options{Pool: 2, Timeout: generous})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	for range 16 {
		wg.Go(func() {
			for range 20 {
				out, err := m.Request(t.Context(), &RequestIn{Method: []byte("GET"), Path: []byte("/api/prices"), Header: Pairs{{"X-Region", "us"}}})
				if err == nil && out.KeyAdd != "region=us" {
					err = errors.New("wrong answer " + out.KeyAdd)
				}
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d of 320 calls failed, first: %v", len(failed), failed[0])
	}
	if err := m.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Request(t.Context(), &RequestIn{}); reason(err) != ReasonBusy {
		t.Errorf("a call after Close: %v, want busy", err)
	}
}

func TestCompileRefusesModulesWithoutTheABI(t *testing.T) {
	onlyMemory := []byte{0, 'a', 's', 'm', 1, 0, 0, 0, 5, 3, 1, 0, 1, 7, 10, 1, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0}
	for name, b := range map[string][]byte{"garbage": []byte("not wasm"), "only memory": onlyMemory} {
		_, err := Compile(t.Context(), "bad.wasm", b, Options{Pool: 1})
		if err == nil || !strings.Contains(err.Error(), "bad.wasm") {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
	_, err := Compile(t.Context(), "bad.wasm", onlyMemory, Options{Pool: 1})
	if !strings.Contains(err.Error(), "swr_alloc") {
		t.Errorf("only memory: %v, want swr_alloc named", err)
	}
}
