package tiers

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// promotedEntry is what a request for key finds in L2 when it holds e: the Store decodes it
// over a value of its own, as go-redis returns it. It returns the entry and that value.
func promotedEntry(t *testing.T, e *Entry) (*Entry, string) {
	t.Helper()
	s := newStoreWith(t, Options{L1MaxBytes: 1 << 20, L1MaxTTL: time.Hour})
	value := string(encode(e))
	o := s.objectOf(t.Context(), strings.Clone(e.Key), "rk", map[string]string{"g": "0", variantPrefix: value})
	if o == nil || len(o.Variants) != 1 {
		t.Fatalf("objectOf = %+v, want the entry", o)
	}
	if d := entryDiff(o.Variants[0], e); d != "" {
		t.Fatalf("promoted entry: %s", d)
	}
	return o.Variants[0], value
}

// priceEntry is a 1 KiB JSON response as a fill stores it, with its codings when coded.
func priceEntry(body int, coded bool) *Entry {
	e := &Entry{
		Key:    "/api/prices?pair=ALGO-USD",
		Status: 200,
		Header: []Field{
			{"Cache-Control", "max-age=3600"}, {"Content-Type", "application/json"},
			{"Date", "Fri, 04 Dec 2026 19:00:00 GMT"}, {"Vary", "Accept-Encoding"},
		},
		Body:        bytes.Repeat([]byte("x"), body),
		ETag:        `"p-123"`,
		Stored:      time.Unix(1_700_000_000, 0),
		Fresh:       time.Hour,
		ReqHeader:   &[]Field{{"Accept", "*/*"}, {"User-Agent", "poller/1.0"}},
		AnyEncoding: true,
	}
	if coded {
		e.Encodings = []Encoding{
			{Coding: "br", ETag: `"p-123:swr-br"`, Body: bytes.Repeat([]byte("b"), body/4)},
			{Coding: "gzip", ETag: `"p-123:swr-gzip"`, Body: bytes.Repeat([]byte("g"), body/3)},
		}
	}
	return e
}

// viewsOf returns the strings and bodies e holds that lie in value's bytes.
func viewsOf(e *Entry, value string) []string {
	start := uintptr(unsafe.Pointer(unsafe.StringData(value)))
	inside := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return s != "" && p >= start && p < start+uintptr(len(value))
	}
	held := []string{e.Key, e.ETag, unsafe.String(unsafe.SliceData(e.Body), len(e.Body))}
	for _, f := range append(append([]Field(nil), e.Header...), e.Replayed()...) {
		held = append(held, f.Name, f.Value)
	}
	for _, c := range e.Encodings {
		held = append(held, c.ETag, unsafe.String(unsafe.SliceData(c.Body), len(c.Body)))
	}
	var views []string
	for _, s := range held {
		if inside(s) {
			views = append(views, s)
		}
	}
	return views
}

// TestAPromotedSmallEntryKeepsNothingOfTheRedisValue: an entry of a 1 KiB body (with and
// without its codings) promoted from L2 holds copies of its own, so that the value it came in,
// in a larger size class, is garbage: its body and codings at their length, its field values and
// replayed fields shared with the other entries that have the same (issue 14, bytes per object).
func TestAPromotedSmallEntryKeepsNothingOfTheRedisValue(t *testing.T) {
	for _, coded := range []bool{false, true} {
		e, value := promotedEntry(t, priceEntry(1024, coded))
		if views := viewsOf(e, value); len(views) > 0 {
			t.Errorf("coded %v: the promoted entry views the Redis value in %d places (%.30q…)", coded, len(views), views[0])
		}
		if cap(e.Body) != len(e.Body) { // the copy's capacity, as decode's view has
			t.Errorf("coded %v: body of %d bytes with a capacity of %d", coded, len(e.Body), cap(e.Body))
		}
		other, _ := promotedEntry(t, priceEntry(1024, coded))
		if other.ReqHeader != e.ReqHeader {
			t.Errorf("coded %v: two promoted entries hold two copies of the same replayed fields", coded)
		}
		for i, f := range e.Header {
			if unsafe.StringData(f.Value) != unsafe.StringData(other.Header[i].Value) {
				t.Errorf("coded %v: two promoted entries hold two copies of %s: %q", coded, f.Name, f.Value)
			}
		}
	}
}

// TestAPromotedEntryIsCopiedOnlyWhenTheCopiesCostLess: an entry keeps viewing its Redis value
// when copies would not fit smaller size classes than the value (a body of 16 500 bytes and its
// value share the 18 432-byte class), or when the value is past the small size classes: copying
// would only add garbage. A 16 KiB body has a class of its own, 2 KiB below its value's.
func TestAPromotedEntryIsCopiedOnlyWhenTheCopiesCostLess(t *testing.T) {
	for _, tt := range []struct {
		body   int
		copied bool
	}{{16 << 10, true}, {16500, false}, {compactMax, false}} {
		e, value := promotedEntry(t, priceEntry(tt.body, false))
		if views := viewsOf(e, value); (len(views) == 0) != tt.copied {
			t.Errorf("a %d-byte body in a value of %d bytes: copied %v, want %v", tt.body, len(value), len(views) == 0, tt.copied)
		}
	}
}

// TestSizeClassesAreTheAllocators: sizeClass is what an allocation of that many bytes takes.
func TestSizeClassesAreTheAllocators(t *testing.T) {
	for _, n := range []int{1, 8, 9, 1000, 1024, 1025, 1228, 6913, 16500, compactMax} {
		b := append([]byte(nil), make([]byte, n)...) // growslice rounds a new array up to its size class
		if got := sizeClass(n); got != cap(b) || got < n {
			t.Errorf("sizeClass(%d) = %d, want %d", n, got, cap(b))
		}
	}
	// Two classes of the Go allocator these figures rely on (README, compact's comment).
	if sizeClass(1228) != 1280 || sizeClass(16720) != 18432 {
		t.Errorf("sizeClass(1228) = %d, sizeClass(16720) = %d; want 1280 and 18432", sizeClass(1228), sizeClass(16720))
	}
	if sizeClass(0) != 0 {
		t.Errorf("sizeClass(0) = %d, want 0", sizeClass(0))
	}
}

// TestAPromotedEntryWithALongReplayListKeepsItsViews: replayed fields longer than refresh keeps
// (a value something else wrote) are not interned, so the entry keeps viewing its value rather
// than holding a long list of its own (security review: a 30 KiB list was interned).
func TestAPromotedEntryWithALongReplayListKeepsItsViews(t *testing.T) {
	e := priceEntry(1024, false)
	e.ReqHeader = &[]Field{{"User-Agent", strings.Repeat("a", MaxReplayBytes)}}
	got, value := promotedEntry(t, e)
	if len(viewsOf(got, value)) == 0 {
		t.Error("an entry with a replayed list past MaxReplayBytes was copied out of its value")
	}
}
