// Package wasm runs swrproxy's WebAssembly policy hooks (SWR_POLICY_WASM) on wazero, a pure-Go
// runtime: a module is compiled once, instantiated into a pool of instances that each serve one
// call at a time, and every call has a deadline after which wazero closes the instance (which is
// then replaced). Nothing a module does fails a request: every failure is an *Error whose Reason
// the caller counts, and the caller carries on without the hook.
//
// The ABI, language-neutral, is in the README's "Wasm hooks".
package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Options bound a module's instances.
type Options struct {
	Pool        int           // instances kept; <= 0 means runtime.GOMAXPROCS(0)
	Timeout     time.Duration // deadline to get a free instance, and then of the call; <= 0 means 5ms
	MemoryLimit uint32        // bytes of guest memory per instance; 0 means 64 MiB (rounded up to 64 KiB pages)
	// Cache, when set, keeps compiled code between Compile calls of the same bytes (tests share
	// one: compiling a Go module under the race detector takes tens of seconds). nil: none, so
	// that reloads of ever new modules do not accumulate compiled code.
	Cache wazero.CompilationCache
}

// Hook names an exported hook.
type Hook string

// The hooks a module may export.
const (
	OnRequest  Hook = "on_request"
	OnResponse Hook = "on_response"
)

// Reasons a call fails, in Error.Reason (the label values of swrproxy_policy_errors_total).
const (
	ReasonTimeout     = "timeout"     // the call passed its deadline and was cut
	ReasonTrap        = "trap"        // the guest trapped, exited or ran out of memory
	ReasonBadOutput   = "bad_output"  // the output was out of bounds, not valid JSON, or broke a limit
	ReasonBusy        = "busy"        // no instance was free before the deadline (or the module is closed)
	ReasonInstantiate = "instantiate" // a replacement instance could not be made
)

// Error is a failed hook call.
type Error struct {
	Hook   Hook
	Reason string
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("wasm: %s: %s: %v", e.Hook, e.Reason, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Limits of the ABI.
const (
	maxOutput = 64 << 10  // bytes of one hook's output
	maxInput  = 256 << 10 // bytes of one hook's input; header pairs past it are left out
	pageSize  = 64 << 10
)

// Module is a compiled policy module and its pool of instances. Safe for concurrent use.
type Module struct {
	name     string
	hash     string
	o        Options
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	start    []string // _initialize when exported
	has      map[Hook]bool

	pool     chan *instance
	closed   atomic.Bool
	inflight sync.WaitGroup
	bufs     sync.Pool
}

// instance is one instantiation of the module, used by one call at a time.
type instance struct {
	mod   api.Module
	mem   api.Memory
	alloc api.Function
	hooks map[Hook]api.Function
	stack []uint64
}

// Load reads path and compiles it (see Compile).
func Load(ctx context.Context, path string, o Options) (*Module, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wasm: %w", err)
	}
	return Compile(ctx, path, b, o)
}

// MaxMemoryBytes is an instance's memory limit unless Options say less.
const MaxMemoryBytes = 64 << 20

// Compile compiles wasm (name, e.g. its file, is for messages) and instantiates o.Pool instances.
// It fails when the bytes do not compile, memory or swr_alloc is missing, neither hook is
// exported, an export has the wrong signature, or an instance fails to start.
func Compile(ctx context.Context, name string, wasm []byte, o Options) (*Module, error) {
	if o.Pool <= 0 {
		o.Pool = runtime.GOMAXPROCS(0)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Millisecond
	}
	if o.MemoryLimit == 0 {
		o.MemoryLimit = MaxMemoryBytes
	}
	pages := (uint64(o.MemoryLimit) + pageSize - 1) / pageSize
	cfg := wazero.NewRuntimeConfig().WithCloseOnContextDone(true).WithMemoryLimitPages(uint32(min(pages, 65536)))
	if o.Cache != nil {
		cfg = cfg.WithCompilationCache(o.Cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	m := &Module{name: name, o: o, rt: rt, has: map[Hook]bool{}, pool: make(chan *instance, o.Pool)}
	sum := sha256.Sum256(wasm)
	m.hash = hex.EncodeToString(sum[:])
	fail := func(err error) (*Module, error) {
		rt.Close(context.Background())
		return nil, fmt.Errorf("wasm: %s: %w", name, err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fail(err)
	}
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return fail(err)
	}
	m.compiled = cm
	if err := m.checkExports(); err != nil {
		return fail(err)
	}
	for range o.Pool {
		in, err := m.instantiate(ctx)
		if err != nil {
			return fail(err)
		}
		m.pool <- in
	}
	return m, nil
}

// checkExports checks the ABI's exports and their signatures.
func (m *Module) checkExports() error {
	if _, ok := m.compiled.ExportedMemories()["memory"]; !ok {
		return errors.New(`exports no memory named "memory"`)
	}
	fns := m.compiled.ExportedFunctions()
	sig := func(name string, params, results []api.ValueType) error {
		d := fns[name]
		if !equal(d.ParamTypes(), params) || !equal(d.ResultTypes(), results) {
			return fmt.Errorf("export %s has signature %v -> %v, want %v -> %v", name, d.ParamTypes(), d.ResultTypes(), params, results)
		}
		return nil
	}
	if _, ok := fns["swr_alloc"]; !ok {
		return errors.New("exports no swr_alloc(size i32) -> i32")
	}
	if err := sig("swr_alloc", []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}); err != nil {
		return err
	}
	for _, h := range []Hook{OnRequest, OnResponse} {
		if _, ok := fns[string(h)]; !ok {
			continue
		}
		if err := sig(string(h), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}); err != nil {
			return err
		}
		m.has[h] = true
	}
	if len(m.has) == 0 {
		return errors.New("exports neither on_request nor on_response")
	}
	if d, ok := fns["_initialize"]; ok && len(d.ParamTypes()) == 0 && len(d.ResultTypes()) == 0 {
		m.start = []string{"_initialize"}
	}
	return nil
}

func equal(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// instantiate makes one instance: WASI without files, environment, arguments or network, and
// the reactor's _initialize run once.
func (m *Module) instantiate(ctx context.Context) (*instance, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second+m.o.Timeout)
	defer cancel()
	mod, err := m.rt.InstantiateModule(ctx, m.compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions(m.start...).
		WithSysWalltime().WithSysNanotime())
	if err != nil {
		return nil, err
	}
	in := &instance{mod: mod, mem: mod.Memory(), alloc: mod.ExportedFunction("swr_alloc"), hooks: map[Hook]api.Function{}, stack: make([]uint64, 2)}
	for h := range m.has {
		in.hooks[h] = mod.ExportedFunction(string(h))
	}
	return in, nil
}

// Hash returns the hex SHA-256 of the module's bytes.
func (m *Module) Hash() string { return m.hash }

// Has reports whether the module exports hook h.
func (m *Module) Has(h Hook) bool { return m != nil && m.has[h] }

// Close waits for the calls in flight (each bounded by its deadline), then closes the runtime.
// Calls after Close fail with ReasonBusy.
func (m *Module) Close(ctx context.Context) error {
	if m.closed.Swap(true) {
		return nil
	}
	m.inflight.Wait()
	return m.rt.Close(ctx)
}

// call runs hook on input and returns a copy of its output (nil for "no change").
func (m *Module) call(ctx context.Context, h Hook, input []byte) ([]byte, error) {
	if m.closed.Load() {
		return nil, &Error{Hook: h, Reason: ReasonBusy, Err: errors.New("module closed")}
	}
	m.inflight.Add(1)
	defer m.inflight.Done()
	// Two deadlines of Timeout each: one to get a free instance (else busy), and one for the call
	// itself, which starts when the instance is ours, so that a call that waited is not cut short
	// and a healthy instance is not closed for the time others kept the pool busy.
	wait, cancelWait := context.WithTimeout(ctx, m.o.Timeout)
	defer cancelWait()
	var in *instance
	select {
	case in = <-m.pool:
	case <-wait.Done():
		return nil, &Error{Hook: h, Reason: ReasonBusy, Err: errors.New("no free instance before the deadline")}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.o.Timeout)
	defer cancel()
	out, reason, err := in.run(ctx, h, input)
	if reason == ReasonTimeout || reason == ReasonTrap {
		// The instance is closed (timeout) or in an unknown state (trap): never reuse it.
		in.mod.Close(context.Background())
		m.inflight.Add(1)
		go m.replace()
	} else {
		m.pool <- in
	}
	if err != nil {
		return nil, &Error{Hook: h, Reason: reason, Err: err}
	}
	return out, nil
}

// replace adds a fresh instance to the pool in place of a broken one.
func (m *Module) replace() {
	defer m.inflight.Done()
	if m.closed.Load() {
		return
	}
	for {
		in, err := m.instantiate(context.Background())
		if err == nil {
			m.pool <- in
			return
		}
		if m.closed.Load() {
			return
		}
		time.Sleep(100 * time.Millisecond) // a module that cannot start again: keep trying, slowly
	}
}

// run is one call on the instance; reason is set with err.
func (in *instance) run(ctx context.Context, h Hook, input []byte) (out []byte, reason string, err error) {
	fail := func(err error) ([]byte, string, error) {
		if ctx.Err() != nil {
			return nil, ReasonTimeout, ctx.Err()
		}
		return nil, ReasonTrap, err
	}
	in.stack[0] = uint64(len(input))
	if err := in.alloc.CallWithStack(ctx, in.stack); err != nil {
		return fail(err)
	}
	ptr := uint32(in.stack[0])
	if !in.mem.Write(ptr, input) {
		return nil, ReasonBadOutput, fmt.Errorf("swr_alloc returned %d, outside memory for %d bytes", ptr, len(input))
	}
	in.stack[0], in.stack[1] = uint64(ptr), uint64(len(input))
	if err := in.hooks[h].CallWithStack(ctx, in.stack); err != nil {
		return fail(err)
	}
	res := in.stack[0]
	if res == 0 {
		return nil, "", nil
	}
	optr, olen := uint32(res>>32), uint32(res)
	if olen > maxOutput {
		return nil, ReasonBadOutput, fmt.Errorf("output of %d bytes, more than %d", olen, maxOutput)
	}
	b, ok := in.mem.Read(optr, olen)
	if !ok {
		return nil, ReasonBadOutput, fmt.Errorf("output at %d+%d is outside memory", optr, olen)
	}
	return append([]byte(nil), b...), "", nil
}
