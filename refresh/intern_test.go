package refresh

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestEntriesFilledByOneKindOfClientShareItsReplayedFieldValues: the request fields an entry
// keeps for its refreshes are one copy per distinct value, not one per entry; the copies are
// bounded in number and length.
func TestEntriesFilledByOneKindOfClientShareItsReplayedFieldValues(t *testing.T) {
	ua := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
	req := func() http.Header {
		// Each request's values are its own strings, as a client's request fields are.
		return http.Header{"User-Agent": {string([]byte(ua))}, "Accept": {string([]byte("application/json"))}}
	}
	a, b := replayHeader(req(), nil), replayHeader(req(), nil)
	if len(a) != 2 || len(b) != 2 || cap(a) != 2 || cap(b) != 2 {
		t.Fatalf("replay fields %q (cap %d) and %q, want Accept and User-Agent, allocated at their length", a, cap(a), b)
	}
	for i := range a {
		if a[i] != b[i] || unsafe.StringData(a[i].Value) != unsafe.StringData(b[i].Value) {
			t.Errorf("%s: the two entries hold two copies of %q", a[i].Name, a[i].Value)
		}
	}
	if &a[0] != &b[0] {
		t.Error("the two entries hold two copies of the same field list")
	}

	var in interned
	long := strings.Repeat("x", internValueMax+1)
	if s := in.of(long); s != long || len(in.values) != 0 {
		t.Errorf("a value over %d bytes was kept (%d values)", internValueMax, len(in.values))
	}
	for i := range internMax + 10 {
		in.of("agent/" + strconv.Itoa(i))
	}
	if len(in.values) != 10 {
		t.Errorf("%d values kept after %d, want 10: full at %d, it starts over", len(in.values), internMax+10, internMax)
	}
}
