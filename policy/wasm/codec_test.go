package wasm

import (
	"strings"
	"testing"
)

func TestOutputsAreRefusedWhereTheRulesFileWouldBe(t *testing.T) {
	bad := []struct{ out, msg string }{
		{`{"set_headers":{"Content-Length":"0"}}`, "frames the message"},
		{`{"remove_headers":["transfer-encoding"]}`, "frames the message"},
		{`{"set_headers":{"Host":"evil"}}`, "frames the message"},
		{`{"set_headers":{"X-A":"a\u0001b"}}`, "control character"},
		{`{"set_headers":{"X A":"b"}}`, "not a field name"},
		{`{"key":"x"}`, "origin-form"},
		{`{"surprise":1}`, "unknown field"},
		{`{} {}`, "data after"},
	}
	for _, tt := range bad {
		if _, err := DecodeRequestOut([]byte(tt.out)); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("DecodeRequestOut(%s) = %v, want an error with %q", tt.out, err, tt.msg)
		}
	}
	if _, err := DecodeResponseOut([]byte(`{"remove_headers":["Connection"]}`)); err == nil {
		t.Error("on_response may remove Connection")
	}
	out, err := DecodeRequestOut([]byte(`{"set_headers":{"X-Region":"eu\tw"},"remove_headers":["X-Debug"],"key_add":"eu"}`))
	if err != nil || len(out.Set) != 1 || out.Remove[0] != "X-Debug" || out.KeyAdd != "eu" {
		t.Errorf("a good output: %+v, %v", out, err)
	}
}
