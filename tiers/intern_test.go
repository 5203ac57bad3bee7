package tiers

import (
	"strconv"
	"strings"
	"testing"
)

// TestInternedValuesAreBounded: an Interned table keeps at most internMax values of at most
// internValueMax bytes; full, it starts over, so values a client floods it with do not stay.
func TestInternedValuesAreBounded(t *testing.T) {
	var in Interned
	long := strings.Repeat("x", internValueMax+1)
	if s := in.Of(long); s != long || len(in.values) != 0 {
		t.Errorf("a value over %d bytes was kept (%d values)", internValueMax, len(in.values))
	}
	for i := range internMax + 10 {
		in.Of("agent/" + strconv.Itoa(i))
	}
	if len(in.values) != 10 {
		t.Errorf("%d values kept after %d, want 10: full at %d, it starts over", len(in.values), internMax+10, internMax)
	}
}
