package proxy

import (
	"math"
	"strings"
	"testing"

	"github.com/swrproxy/swrproxy/tiers"
)

// rangeTests read Range values (RFC 9110 §14.1.1, §14.1.2, §14.2) against a 10-byte body.
var rangeTests = []struct {
	v           string
	first, last int64
	want        rangeAnswer
}{
	{"bytes=0-4", 0, 4, rangePartial},
	{"bytes=2-", 2, 9, rangePartial},
	{"bytes=-3", 7, 9, rangePartial},
	{"bytes=-30", 0, 9, rangePartial}, // a suffix longer than the body is all of it
	{"bytes=5-50", 5, 9, rangePartial},
	{"bytes=9-9", 9, 9, rangePartial},
	{"BYTES=0-0", 0, 0, rangePartial}, // range units are case-insensitive (§14.1)
	{"bytes= 1-2 ,", 1, 2, rangePartial},
	{"bytes=,\t1-2", 1, 2, rangePartial}, // empty list elements (§5.6.1)
	{"bytes=0-99999999999999999999999", 0, 9, rangePartial},
	{"bytes=-99999999999999999999999", 0, 9, rangePartial},
	{"bytes=10-", 0, 0, rangeUnsatisfiable},
	{"bytes=10-20", 0, 0, rangeUnsatisfiable},
	{"bytes=99999999999999999999999-", 0, 0, rangeUnsatisfiable},
	{"bytes=-0", 0, 0, rangeUnsatisfiable},
	{"bytes=0-1,3-4", 0, 0, rangeWhole}, // several ranges: the whole 200
	{"bytes=0-1," + strings.Repeat("x,", 100), 0, 0, rangeWhole},
	{"bytes=5-4", 0, 0, rangeWhole}, // last < first: invalid
	{"bytes=0-1,5-4", 0, 0, rangeWhole},
	{"bytes=1", 0, 0, rangeWhole},
	{"bytes=-", 0, 0, rangeWhole},
	{"bytes=--1", 0, 0, rangeWhole},
	{"bytes=+1-2", 0, 0, rangeWhole},
	{"bytes=1 - 2", 0, 0, rangeWhole},
	{"bytes=0x1-2", 0, 0, rangeWhole},
	{"bytes =0-1", 0, 0, rangeWhole},
	{"bytes=", 0, 0, rangeWhole},
	{"bytes=,", 0, 0, rangeWhole},
	{"items=0-1", 0, 0, rangeWhole},
	{"bytes 0-1", 0, 0, rangeWhole},
	{"", 0, 0, rangeWhole},
	{"bytes=1-2\x00", 0, 0, rangeWhole},
	{"bytes=١-٢", 0, 0, rangeWhole}, // non-ASCII digits
}

func TestParseRangeRFC9110Section14(t *testing.T) {
	for _, tt := range rangeTests {
		first, last, got := parseRange(tt.v, 10)
		if got != tt.want || got == rangePartial && (first != tt.first || last != tt.last) {
			t.Errorf("parseRange(%q, 10) = %d-%d %d; want %d-%d %d", tt.v, first, last, got, tt.first, tt.last, tt.want)
		}
	}
	if _, _, got := parseRange("bytes=0-", 0); got != rangeWhole {
		t.Errorf("parseRange on an empty body = %d, want the whole (empty) 200", got)
	}
}

func TestIfRangeRFC9110Section13_1_5(t *testing.T) {
	e := &tiers.Entry{ETag: `"v1"`, Header: []tiers.Field{{Name: "Date", Value: "Tue, 02 Jan 2024 00:00:00 GMT"},
		{Name: "Last-Modified", Value: "Mon, 01 Jan 2024 00:00:00 GMT"}}}
	weak := &tiers.Entry{ETag: `W/"v1"`}
	sameSecond := &tiers.Entry{ETag: `"v1"`, Header: []tiers.Field{{Name: "Date", Value: "Mon, 01 Jan 2024 00:00:00 GMT"},
		{Name: "Last-Modified", Value: "Mon, 01 Jan 2024 00:00:00 GMT"}}}
	tests := []struct {
		v    string
		e    *tiers.Entry
		want bool
	}{
		{"", e, true},
		{`"v1"`, e, true},
		{` "v1" `, e, true},
		{`"v2"`, e, false},
		{`W/"v1"`, e, false},     // strong comparison
		{`W/"v1"`, weak, false},  // a weak stored tag never matches
		{`"v1"`, weak, false},    // idem
		{`"v1", "v2"`, e, false}, // one entity-tag, not a list
		{`"v1`, e, false},
		{"Mon, 01 Jan 2024 00:00:00 GMT", e, true},
		{"Monday, 01-Jan-24 00:00:00 GMT", e, false}, // the same time, but not the exact Last-Modified value (§13.1.5: "exactly matches")
		{"Mon, 01 Jan 2024 00:00:01 GMT", e, false},
		{"Mon, 01 Jan 2024 00:00:00 GMT", weak, false},       // no Last-Modified
		{"Mon, 01 Jan 2024 00:00:00 GMT", sameSecond, false}, // a weak Last-Modified (§8.8.2.2)
		{"yesterday", e, false},
	}
	for _, tt := range tests {
		if got := ifRangeHolds(tt.v, tt.e); got != tt.want {
			t.Errorf("ifRangeHolds(%q, ETag %s) = %v, want %v", tt.v, tt.e.ETag, got, tt.want)
		}
	}
}

// FuzzParseRange: whatever the value and size, parseRange never panics, a partial range lies
// within the body, and an answer other than the whole 200 comes from a bytes unit.
func FuzzParseRange(f *testing.F) {
	for _, tt := range rangeTests {
		f.Add(tt.v, int64(10))
	}
	f.Add("bytes=0-", int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, v string, size int64) {
		first, last, got := parseRange(v, size)
		switch got {
		case rangePartial:
			if first < 0 || first > last || last >= size {
				t.Fatalf("parseRange(%q, %d) = %d-%d: not within the body", v, size, first, last)
			}
		case rangeUnsatisfiable:
		case rangeWhole:
			return
		default:
			t.Fatalf("parseRange(%q, %d) = answer %d", v, size, got)
		}
		if size <= 0 || len(v) < len("bytes=") || !strings.EqualFold(v[:6], "bytes=") {
			t.Fatalf("parseRange(%q, %d) = answer %d; want the whole 200", v, size, got)
		}
	})
}
