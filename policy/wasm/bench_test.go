package wasm

import (
	"testing"
	"time"
)

// BenchmarkRequest is one on_request call of the example module (JSON in and out, Go's runtime
// in the guest), the cost a hook adds to every request.
func BenchmarkRequest(b *testing.B) {
	m := compile(b, "../../examples/policy", Options{Pool: 1, Timeout: 5 * time.Second})
	in := &RequestIn{Method: []byte("GET"), Path: []byte("/api/prices"), Query: []byte("pair=A"), Header: Pairs{{"X-Region", "eu"}, {"User-Agent", "poller/1.0"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Request(b.Context(), in); err != nil {
			b.Fatal(err)
		}
	}
}

// minimal is a hand-assembled module whose on_request answers "no change" at once
// (swr_alloc returns 1024): the host's own cost of a call, without a guest runtime.
var minimal = []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
	1, 12, 2, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 2, 0x7f, 0x7f, 1, 0x7e, // types: (i32)->i32, (i32,i32)->i64
	3, 3, 2, 0, 1, // functions
	5, 3, 1, 0, 1, // one page of memory
	7, 35, 3, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0, 9, 's', 'w', 'r', '_', 'a', 'l', 'l', 'o', 'c', 0, 0,
	10, 'o', 'n', '_', 'r', 'e', 'q', 'u', 'e', 's', 't', 0, 1,
	10, 12, 2, 5, 0, 0x41, 0x80, 0x08, 0x0b, 4, 0, 0x42, 0, 0x0b, // code: i32.const 1024; i64.const 0
}

// BenchmarkRequestMinimal is one on_request call of a module that does nothing: what the host
// adds (the input's JSON, the instance pool, the deadline, the call).
func BenchmarkRequestMinimal(b *testing.B) {
	m, err := Compile(b.Context(), "minimal.wasm", minimal, Options{Pool: 1, Timeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close(b.Context())
	in := &RequestIn{Method: []byte("GET"), Path: []byte("/api/prices"), Query: []byte("pair=A"), Header: Pairs{{"X-Region", "eu"}, {"User-Agent", "poller/1.0"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Request(b.Context(), in); err != nil {
			b.Fatal(err)
		}
	}
}
