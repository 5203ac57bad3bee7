package wasm

import (
	"strings"
	"testing"

	"github.com/swrproxy/swrproxy/httpcache"
)

// FuzzDecodeRequestOut: whatever a module answers, decoding never panics, and what it accepts
// keeps the ABI's limits (no line breaks in fields, a key that is an origin-form target).
func FuzzDecodeRequestOut(f *testing.F) {
	f.Add([]byte(`{"key":"/a?b=1","key_add":"x","bypass":true,"set_headers":{"X-A":"1"},"remove_headers":["X-B"]}`))
	f.Add([]byte(`{"set_headers":{"X-A":"a\r\nb"}}`))
	f.Add([]byte(`{"key":"/a b"}{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := DecodeRequestOut(b)
		if err != nil {
			return
		}
		if out.HasKey && (!strings.HasPrefix(out.Key, "/") || strings.ContainsAny(out.Key, " \r\n")) {
			t.Fatalf("accepted key %q", out.Key)
		}
		for _, kv := range out.Set {
			if !httpcache.IsToken(kv[0]) || httpcache.FramingField(kv[0]) || !httpcache.IsFieldValue(kv[1]) {
				t.Fatalf("accepted field %q", kv)
			}
		}
	})
}

// FuzzDecodeResponseOut: likewise for on_response (durations within 0..2^31 s, tags without spaces).
func FuzzDecodeResponseOut(f *testing.F) {
	f.Add([]byte(`{"ttl":2.5,"stale_while_revalidate":30,"stale_if_error":3600,"cache":false,"tags":["a"],"set_headers":{"X":"1"}}`))
	f.Add([]byte(`{"ttl":-1}`))
	f.Add([]byte(`{"ttl":1e400}`))
	f.Add([]byte(`{"tags":["a b"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := DecodeResponseOut(b)
		if err != nil {
			return
		}
		if out.TTL != nil && (*out.TTL < 0 || out.TTL.Seconds() > maxSeconds+1) {
			t.Fatalf("accepted ttl %v", *out.TTL)
		}
		for _, tag := range out.Tags {
			if tag == "" || strings.ContainsAny(tag, " \t\r\n") {
				t.Fatalf("accepted tag %q", tag)
			}
		}
	})
}
