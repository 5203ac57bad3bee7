// Package wasmtest builds Go packages into WebAssembly policy modules for tests (GOOS=wasip1
// GOARCH=wasm, -buildmode=c-shared: a WASI reactor), as make policy-example does: no module is
// checked in.
package wasmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
)

var (
	mu    sync.Mutex
	built = map[string][]byte{}
)

// Cache is a compilation cache for wasm.Options.Cache, shared by the tests of one binary: each
// module is compiled once however many tests load it.
var Cache = wazero.NewCompilationCache()

// Build returns the module built from the package in dir (relative to the caller's package
// directory, e.g. "../../examples/policy"), building it once per test binary.
func Build(tb testing.TB, dir string) []byte {
	tb.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		tb.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if b, ok := built[abs]; ok {
		return b
	}
	out := filepath.Join(tb.TempDir(), "policy.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build %s (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared): %v\n%s", dir, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	built[abs] = b
	return b
}

// File writes the module built from dir into a temporary file and returns its path (for
// SWR_POLICY_WASM).
func File(tb testing.TB, dir string) string {
	tb.Helper()
	b := Build(tb, dir)
	p := filepath.Join(tb.TempDir(), "policy.wasm")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}
