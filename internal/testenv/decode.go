package testenv

import (
	"bytes"
	"io"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
)

// Decode returns b decoded from the content coding (as in Content-Encoding: "gzip", "br", or ""
// for identity); another coding, or bytes that do not decode, fail the test.
func Decode(tb testing.TB, coding string, b []byte) []byte {
	tb.Helper()
	var r io.Reader = bytes.NewReader(b)
	switch coding {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			tb.Fatalf("gzip body: %v", err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(r)
	case "":
	default:
		tb.Fatalf("Content-Encoding %q", coding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("decode the %q body: %v", coding, err)
	}
	return out
}
