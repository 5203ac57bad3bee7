package refresh

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
)

// A stored body is exactly its size: the entry keeps it for its life, and io.ReadAll's growth
// left up to half again as much capacity unused (issue 14, bytes per object).
func TestAStoredBodyIsReadIntoABufferOfItsSize(t *testing.T) {
	body := strings.Repeat("x", 1000)
	for _, tt := range []struct {
		name    string
		length  int64
		wantLen int
	}{
		{"a known length", 1000, 1000},
		{"an unknown length", -1, 1000},
		{"a body shorter than it said", 1200, 1000}, // store's length check refuses it
		{"a body longer than it said", 900, 901},    // read one byte past: store refuses it (its capacity does not matter)
	} {
		b, err := readBody(iotest.HalfReader(strings.NewReader(body)), tt.length, 8<<20)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if len(b) != tt.wantLen || !bytes.Equal(b, []byte(body[:len(b)])) {
			t.Errorf("%s: read %d bytes, want %d", tt.name, len(b), tt.wantLen)
		}
		if slack := cap(b) - len(b); slack > len(b)/16+1 && tt.length >= int64(len(body)) {
			t.Errorf("%s: %d bytes of capacity unused for a %d-byte body", tt.name, slack, len(b))
		}
	}
	// Past the bound it reads one byte more, so that the caller relays it instead.
	if b, err := readBody(strings.NewReader(body), -1, 100); err != nil || len(b) != 101 {
		t.Errorf("a body past the bound: %d bytes, %v; want 101", len(b), err)
	}
}
