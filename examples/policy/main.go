//go:build wasip1

// Command policy is an example swrproxy policy module (README "Wasm hooks"), in Go:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o policy.wasm ./examples/policy
//
// (or make policy-example). on_request: under /api/prices, the X-Region request field joins the
// cache key and is sent to the origin; X-Bypass: 1 bypasses the cache; every origin request gets X-Policy: example.
// on_response: a 200 under /api/prices is fresh for 2 s, tagged "prices" and answered with
// X-Policy: example; anything under /private/ is not stored.
package main

import (
	"encoding/json"
	"strings"
	"unsafe"
)

func main() {}

// pinned keeps what swr_alloc handed out, and the last output, alive until the next call: the
// host writes and reads them between calls, and the GC must not free them meanwhile.
var pinned [][]byte

//go:wasmexport swr_alloc
func swrAlloc(size uint32) uint32 {
	if len(pinned) > 4 {
		pinned = pinned[:0]
	}
	b := make([]byte, max(size, 1))
	pinned = append(pinned, b)
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

type request struct {
	Method  string      `json:"method"`
	Host    string      `json:"host"`
	Path    string      `json:"path"`
	Query   string      `json:"query"`
	Headers [][2]string `json:"headers"`
	Status  int         `json:"status"`
}

func (r *request) header(name string) string {
	for _, kv := range r.Headers {
		if strings.EqualFold(kv[0], name) {
			return kv[1]
		}
	}
	return ""
}

func input(ptr, n uint32) (*request, bool) {
	var r request
	err := json.Unmarshal(unsafe.Slice((*byte)(unsafe.Pointer(uintptr(ptr))), n), &r)
	return &r, err == nil
}

// output returns the ABI's (pointer << 32 | length) of v's JSON, kept alive in pinned.
func output(v any) uint64 {
	b, err := json.Marshal(v)
	if err != nil || len(b) == 0 {
		return 0
	}
	pinned = append(pinned, b)
	return uint64(uintptr(unsafe.Pointer(&b[0])))<<32 | uint64(len(b))
}

//go:wasmexport on_request
func onRequest(ptr, n uint32) uint64 {
	r, ok := input(ptr, n)
	if !ok {
		return 0
	}
	set := map[string]string{"X-Policy": "example"}
	out := map[string]any{"set_headers": set}
	if strings.HasPrefix(r.Path, "/api/prices") {
		if region := r.header("X-Region"); region != "" {
			// Keyed, so also sent: a cacheable fill forwards only the fields swrproxy knows to
			// be part of the key, and a key_add names none.
			out["key_add"] = "region=" + region
			set["X-Region"] = region
		}
	}
	if r.header("X-Bypass") == "1" {
		out["bypass"] = true
	}
	return output(out)
}

//go:wasmexport on_response
func onResponse(ptr, n uint32) uint64 {
	r, ok := input(ptr, n)
	if !ok {
		return 0
	}
	switch {
	case strings.HasPrefix(r.Path, "/private/"):
		return output(map[string]any{"cache": false})
	case r.Status == 200 && strings.HasPrefix(r.Path, "/api/prices"):
		return output(map[string]any{"ttl": 2, "tags": []string{"prices"}, "set_headers": map[string]string{"X-Policy": "example"}})
	}
	return 0
}
