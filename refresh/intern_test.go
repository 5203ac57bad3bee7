package refresh

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/swrproxy/swrproxy/tiers"
)

// TestEntriesFilledByOneKindOfClientShareItsReplayedFieldValues: the request fields an entry
// keeps for its refreshes are one copy per distinct value, not one per entry (the interner's
// bounds: tiers.TestInternedValuesAreBounded).
func TestEntriesFilledByOneKindOfClientShareItsReplayedFieldValues(t *testing.T) {
	ua := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
	req := func() http.Header {
		// Each request's values are its own strings, as a client's request fields are.
		return http.Header{"User-Agent": {string([]byte(ua))}, "Accept": {string([]byte("application/json"))}}
	}
	pa, pb := replayHeader(req(), nil), replayHeader(req(), nil)
	if pa != pb {
		t.Error("the two entries hold two copies of the same field list")
	}
	a, b := *pa, *pb
	if len(a) != 2 || len(b) != 2 || cap(a) != 2 || cap(b) != 2 {
		t.Fatalf("replay fields %q (cap %d) and %q, want Accept and User-Agent, allocated at their length", a, cap(a), b)
	}
	for i := range a {
		if a[i] != b[i] || unsafe.StringData(a[i].Value) != unsafe.StringData(b[i].Value) {
			t.Errorf("%s: the two entries hold two copies of %q", a[i].Name, a[i].Value)
		}
	}

	// A name a hook added, a string inside a larger buffer (a decoded L2 entry's bytes, whose
	// body it would keep alive): the kept list holds a copy.
	blob := []byte("X-Hook-Tier" + strings.Repeat("b", 1<<20))
	name := unsafe.String(unsafe.SliceData(blob), len("X-Hook-Tier"))
	kept := *replayHeader(http.Header{name: {"gold"}}, []string{name})
	if len(kept) != 1 || kept[0].Name != name {
		t.Fatalf("replay fields %q, want X-Hook-Tier", kept)
	}
	if p := unsafe.StringData(kept[0].Name); p == unsafe.StringData(name) {
		t.Error("the kept replay field name views the buffer it came from")
	}
}

// TestAStoredHeaderIsAllocatedOnceAtItsLengthAndSharesRepeatedValues: the fields an entry
// stores cost no spare capacity (the Vary: Accept-Encoding swrproxy adds for a compressible
// type was inserted afterwards, growing the slice to half again its length), and the values
// that repeat from response to response are held once for all entries (issue 14, bytes per
// object).
func TestAStoredHeaderIsAllocatedOnceAtItsLengthAndSharesRepeatedValues(t *testing.T) {
	for _, tt := range []struct {
		name, contentType, vary string
		compress                bool
		wantVary                []string
		cacheControl            string // else cacheable's
	}{
		{"JSON, compression on", "application/json", "", true, []string{"Accept-Encoding"}, ""},
		{"JSON, compression off", "application/json", "", false, []string{"Accept-Encoding"}, ""},
		{"JSON varying on Accept-Language", "application/json", "Accept-Language", true, []string{"Accept-Language", "Accept-Encoding"}, ""},
		{"JSON already varying on Accept-Encoding", "application/json", "accept-encoding", false, []string{"accept-encoding"}, ""},
		{"an image", "image/png", "", true, nil, ""},
		// no-cache="Vary" strips the origin's Vary lines; swrproxy's own is still said.
		{"JSON varying on Accept-Encoding, Vary stripped", "application/json", "Accept-Encoding", true, []string{"Accept-Encoding"}, `public, max-age=60, no-cache="Vary"`},
		{"JSON varying on Accept-Language, Vary stripped", "application/json", "Accept-Language", false, []string{"Accept-Encoding"}, `public, max-age=60, no-cache="Vary"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Content-Type", tt.contentType)
				w.Header().Set("X-Served-By", "origin-7")
				if tt.vary != "" {
					w.Header().Set("Vary", tt.vary)
				}
				if tt.cacheControl != "" {
					w.Header().Set("Cache-Control", tt.cacheControl)
					io.WriteString(w, "v")
					return
				}
				cacheable(w, r, n)
			})
			s := newTestStore(t, nil)
			f := newTestFiller(t, s, o)
			if tt.compress {
				f = compressing(t, s, o)
			}
			var entries []*tiers.Entry
			for _, key := range []string{"/a", "/b"} {
				res, err := f.Fill(t.Context(), request(key))
				if err != nil || res.Entry == nil {
					t.Fatalf("Fill %s = %+v, %v", key, res, err)
				}
				e := res.Entry
				if len(e.Header) != cap(e.Header) {
					t.Errorf("%s: %d fields in a slice of capacity %d", key, len(e.Header), cap(e.Header))
				}
				if uintptr(unsafe.Pointer(&e.Header[0])) != uintptr(unsafe.Pointer(e))+unsafe.Sizeof(tiers.Entry{}) {
					t.Errorf("%s: the fields are not in the entry's block (tiers.NewEntry)", key)
				}
				if got := fieldValues(e, "Vary"); !slices.Equal(got, tt.wantVary) {
					t.Errorf("%s: Vary %q, want %q", key, got, tt.wantVary)
				}
				if !slices.IsSortedFunc(e.Header, func(a, b tiers.Field) int { return strings.Compare(a.Name, b.Name) }) {
					t.Errorf("%s: fields not sorted by name: %q", key, e.Header)
				}
				entries = append(entries, e)
			}
			for _, name := range []string{"Content-Type", "X-Served-By", "Cache-Control"} {
				a, b := fieldValues(entries[0], name), fieldValues(entries[1], name)
				if len(a) != 1 || len(b) != 1 || unsafe.StringData(a[0]) != unsafe.StringData(b[0]) {
					t.Errorf("%s: the two entries hold %q and %q, not one shared copy", name, a, b)
				}
			}
		})
	}
}
