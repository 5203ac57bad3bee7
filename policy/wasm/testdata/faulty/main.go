//go:build wasip1

// Command faulty is a policy module that misbehaves on request, by path, for the tests of
// package wasm: /loop never returns, /panic panics, /exit exits, /memhog allocates past any
// memory cap, /garbage answers what is not JSON, /outside answers a pointer outside memory,
// /unknown answers an unknown member; any other path sets X-Faulty: no.
package main

import (
	"encoding/json"
	"os"
	"unsafe"
)

func main() {}

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

func out(b []byte) uint64 {
	pinned = append(pinned, b)
	return uint64(uintptr(unsafe.Pointer(&b[0])))<<32 | uint64(len(b))
}

var sink [][]byte

//go:wasmexport on_request
func onRequest(ptr, n uint32) uint64 {
	var r struct {
		Path string `json:"path"`
	}
	json.Unmarshal(unsafe.Slice((*byte)(unsafe.Pointer(uintptr(ptr))), n), &r)
	switch r.Path {
	case "/loop":
		for i := 0; ; i++ {
			if i < 0 {
				return 0
			}
		}
	case "/panic":
		panic("faulty module")
	case "/exit":
		os.Exit(3)
	case "/memhog":
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	case "/garbage":
		return out([]byte("not json"))
	case "/outside":
		return 0xfffffff0<<32 | 64
	case "/unknown":
		return out([]byte(`{"bypass":true,"surprise":1}`))
	case "/badkey":
		return out([]byte(`{"key":"/x%zz"}`)) // decodes, but is no target the proxy would send
	}
	return out([]byte(`{"set_headers":{"X-Faulty":"no"}}`))
}
