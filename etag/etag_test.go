package etag

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

var parseTests = []struct { // TestParse, TestNoneMatchAgreesWithParse and FuzzParse loop over it
	in       string
	tags     []string
	star, ok bool
}{
	{`"a"`, []string{`"a"`}, false, true},
	{`W/"a"`, []string{`W/"a"`}, false, true},
	{`W/"a", "b"`, []string{`W/"a"`, `"b"`}, false, true},
	{`"a","b"`, []string{`"a"`, `"b"`}, false, true},
	{"\"a\"\t,\t\"b\"", []string{`"a"`, `"b"`}, false, true}, // HTAB is OWS too
	{` "a" , , W/"b" `, []string{`"a"`, `W/"b"`}, false, true},
	{`, "a",`, []string{`"a"`}, false, true}, // empty elements at both ends (RFC 9110 §5.6.1)
	{`""`, []string{`""`}, false, true},
	{`W/""`, []string{`W/""`}, false, true},
	{`"a,b"`, []string{`"a,b"`}, false, true}, // a comma is etagc
	{`"!#~"`, []string{`"!#~"`}, false, true},
	{"\"caf\xc3\xa9\", \"\x80\xff\"", []string{"\"caf\xc3\xa9\"", "\"\x80\xff\""}, false, true}, // obs-text
	{`"a", "a"`, []string{`"a"`, `"a"`}, false, true},
	{`*`, nil, true, true},
	{` * `, nil, true, true},
	{``, nil, false, true},         // an empty list
	{` , ,`, nil, false, true},     // only empty elements
	{`"a" "b"`, nil, false, false}, // no comma between tags
	{`"a"x`, nil, false, false},
	{`a`, nil, false, false}, // unquoted
	{`W/a`, nil, false, false},
	{`"abc`, nil, false, false}, // unterminated
	{`"a", "b`, nil, false, false},
	{`"`, nil, false, false},
	{`W/`, nil, false, false},
	{`W/ "a"`, nil, false, false}, // no whitespace after W/
	{`w/"a"`, nil, false, false},  // W/ is case-sensitive
	{`"a b"`, nil, false, false},  // SP is not etagc
	{"\"a\x01\"", nil, false, false},
	{"\"a\x7f\"", nil, false, false},
	{"\"a\tb\"", nil, false, false},
	{"\"a\"\r\n", nil, false, false}, // CR and LF are not OWS
	{`"a", *`, nil, false, false},    // "*" stands alone
	{`*, "a"`, nil, false, false},
	{`**`, nil, false, false},
	{`"a";"b"`, nil, false, false},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		tags, star, ok := Parse(tt.in)
		if !slices.Equal(tags, tt.tags) || star != tt.star || ok != tt.ok {
			t.Errorf("Parse(%q) = %q, %v, %v; want %q, %v, %v", tt.in, tags, star, ok, tt.tags, tt.star, tt.ok)
		}
	}
}

var noneMatchTests = []struct { // TestNoneMatch, TestNoneMatchAgreesWithParse and FuzzNoneMatch loop over it
	inm, etag string
	want      bool
}{
	{`"a"`, `"a"`, true},
	{`W/"a"`, `"a"`, true}, // what nginx gzip sends back for a strong tag
	{`"a"`, `W/"a"`, true},
	{`W/"a"`, `W/"a"`, true},
	{`"a"`, `"b"`, false},
	{`W/"a"`, `W/"b"`, false},
	{`"a"`, `"A"`, false}, // opaque-tags are case-sensitive
	{`""`, `""`, true},
	{`""`, `W/""`, true},
	{`""`, `"a"`, false},
	{`*`, `"a"`, true},
	{`*`, `W/"a"`, true},
	{` * `, `"a"`, true},
	{`*`, ``, false}, // no representation, nothing to be unmodified
	{`"a"`, ``, false},
	{``, `"a"`, false},
	{` `, `"a"`, false},
	{`"x", W/"a", "y"`, `"a"`, true},
	{`"x", "y", W/"a"`, `"a"`, true},
	{`"x", "y"`, `"a"`, false},
	{` "x" , , W/"a" `, `"a"`, true},
	{"\"x\",\t\"a\"", `"a"`, true},
	{`"a" "b"`, `"a"`, false}, // malformed: no comma
	{`"a", b`, `"a"`, false},  // malformed after the match still gives 200
	{`"a", "b`, `"a"`, false},
	{`a`, `"a"`, false},
	{`"a`, `"a"`, false},
	{`W/ "a"`, `"a"`, false},
	{`w/"a"`, `"a"`, false},
	{`"a", *`, `"a"`, false},
	{`"a,b"`, `"a"`, false},
	{`"a,b"`, `"a,b"`, true},
	{`"W/a"`, `"a"`, false}, // W/ inside the quotes is part of the opaque-tag
	{"\"\x80\xff\"", "W/\"\x80\xff\"", true},
	{`"aXqj5u7nZpcz1iY2TQzQOA"`, `"aXqj5u7nZpcz1iY2TQzQOA"`, true},
}

func TestNoneMatch(t *testing.T) {
	for _, tt := range noneMatchTests {
		if got := NoneMatch(tt.inm, tt.etag); got != tt.want {
			t.Errorf("NoneMatch(%q, %q) = %v, want %v", tt.inm, tt.etag, got, tt.want)
		}
	}
}

// noneMatch is the reference NoneMatch, built on Parse and the weak comparison of RFC 9110 §8.8.3.2.
func noneMatch(inm, etag string) bool {
	tags, star, ok := Parse(inm)
	switch {
	case !ok || etag == "":
		return false
	case star:
		return true
	}
	return slices.ContainsFunc(tags, func(tag string) bool { return weakEqual(tag, etag) })
}

func weakEqual(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}

// fixedTags are compared against every If-None-Match value in TestNoneMatchAgreesWithParse and FuzzNoneMatch.
var fixedTags = []string{``, `"a"`, `W/"a"`, `""`, `W/""`, `"b"`, `*`, `a`, `W/`}

func TestNoneMatchAgreesWithParse(t *testing.T) {
	var inms []string
	for _, tt := range parseTests {
		inms = append(inms, tt.in)
	}
	for _, tt := range noneMatchTests {
		inms = append(inms, tt.inm)
	}
	for _, inm := range inms {
		tags, _, _ := Parse(inm)
		for _, e := range slices.Concat(tags, fixedTags) {
			if got, want := NoneMatch(inm, e), noneMatch(inm, e); got != want {
				t.Errorf("NoneMatch(%q, %q) = %v, but Parse says %v", inm, e, got, want)
			}
		}
	}
}

func TestNoneMatchDoesNotAllocate(t *testing.T) {
	inm, etag := `"x", W/"aXqj5u7nZpcz1iY2TQzQOA", "y"`, `"aXqj5u7nZpcz1iY2TQzQOA"`
	if n := testing.AllocsPerRun(100, func() { NoneMatch(inm, etag) }); n != 0 {
		t.Errorf("NoneMatch allocates %v times per call, want 0", n)
	}
}

func TestNotModifiedSinceComparesDates(t *testing.T) {
	const (
		imf     = "Sun, 06 Nov 1994 08:49:37 GMT" // IMF-fixdate, the preferred format
		rfc850  = "Sunday, 06-Nov-94 08:49:37 GMT"
		asctime = "Sun Nov  6 08:49:37 1994"
		earlier = "Sun, 06 Nov 1994 08:49:36 GMT"
		later   = "Sun, 06 Nov 1994 08:49:38 GMT"
	)
	tests := []struct {
		ims, lastModified string
		want              bool
	}{
		{imf, imf, true},
		{imf, earlier, true},
		{imf, later, false},
		{rfc850, imf, true},
		{asctime, imf, true},
		{imf, rfc850, true},
		{imf, asctime, true},
		{rfc850, later, false},
		{asctime, later, false},
		{earlier, asctime, false},
		{"", imf, false},
		{imf, "", false},
		{"", "", false},
		{"yesterday", imf, false},
		{imf, "yesterday", false},
		{"Sun, 06 Nov 1994 08:49:37 +0000", imf, false}, // not an HTTP-date
		{"1994-11-06T08:49:37Z", imf, false},
	}
	for _, tt := range tests {
		if got := NotModifiedSince(tt.ims, tt.lastModified); got != tt.want {
			t.Errorf("NotModifiedSince(%q, %q) = %v, want %v", tt.ims, tt.lastModified, got, tt.want)
		}
	}
}

func TestNotModifiedPrefersIfNoneMatch(t *testing.T) {
	const date = "Sun, 06 Nov 1994 08:49:37 GMT"
	tests := []struct {
		inm, ims, etag, lastModified string
		want                         bool
	}{
		{`W/"a"`, "", `"a"`, date, true},
		{`W/"a"`, date, `"a"`, date, true},
		{`"b"`, date, `"a"`, date, false}, // If-None-Match present and not matching: If-Modified-Since is ignored
		{`"a" x`, date, `"a"`, date, false},
		{`"a"`, date, "", date, false},
		{"", date, `"a"`, date, true}, // no If-None-Match: If-Modified-Since decides
		{"", "Sun, 06 Nov 1994 08:49:36 GMT", `"a"`, date, false},
		{"", date, `"a"`, "", false},
		{"", "", `"a"`, date, false},
	}
	for _, tt := range tests {
		if got := NotModified(tt.inm, tt.ims, tt.etag, tt.lastModified); got != tt.want {
			t.Errorf("NotModified(%q, %q, %q, %q) = %v, want %v", tt.inm, tt.ims, tt.etag, tt.lastModified, got, tt.want)
		}
	}
}

func TestComputeIsAStableQuotedStrongTag(t *testing.T) {
	for _, body := range [][]byte{nil, {}, []byte("hello"), make([]byte, 1<<20)} {
		tag := Compute(body)
		if again := Compute(body); again != tag {
			t.Errorf("Compute(%d bytes) = %q, then %q", len(body), tag, again)
		}
		if len(tag) != 24 || tag[0] != '"' || tag[23] != '"' {
			t.Errorf("Compute(%d bytes) = %q, want a quoted 22-character tag", len(body), tag)
		}
		if tags, _, ok := Parse(tag); !ok || !slices.Equal(tags, []string{tag}) {
			t.Errorf("Parse(Compute(%d bytes)) = %q, %v; want the tag itself", len(body), tags, ok)
		}
	}
	// Pinned so that a change of algorithm, which would make every client revalidate, is deliberate.
	if got, want := Compute([]byte("hello")), `"LPJNul-wow4m6Dsqxbning"`; got != want {
		t.Errorf(`Compute("hello") = %s, want %s`, got, want)
	}
}

func TestComputeDiffersForDifferentBodies(t *testing.T) {
	bodies := []string{"", "a", "b", "ab", "ba", "hello", "hello\n", strings.Repeat("x", 4096)}
	seen := map[string]string{}
	for _, body := range bodies {
		tag := Compute([]byte(body))
		if prev, ok := seen[tag]; ok {
			t.Errorf("Compute(%q) = Compute(%q) = %s", body, prev, tag)
		}
		seen[tag] = body
	}
}

var normalizeTests = []struct { // TestNormalize and FuzzNormalize loop over it
	in, tag string
	ok      bool
}{
	{`"abc"`, `"abc"`, true},
	{`W/"abc"`, `W/"abc"`, true},
	{`""`, `""`, true},
	{`W/""`, `W/""`, true},
	{" \t\"abc\" \t", `"abc"`, true},
	{`abc`, `"abc"`, true}, // unquoted: some origins send it, nginx would drop it
	{`W/abc`, `W/"abc"`, true},
	{` 5f3c-1a2b `, `"5f3c-1a2b"`, true},
	{`a,b`, `"a,b"`, true},
	{"\x80\xff", "\"\x80\xff\"", true},
	{``, ``, false},
	{`  `, ``, false},
	{`W/`, ``, false},
	{`"`, ``, false},
	{`"abc`, ``, false},
	{`abc"`, ``, false},
	{`"a"b"`, ``, false}, // inner quote
	{`a"b`, ``, false},
	{`W/"abc`, ``, false},
	{`w/"abc"`, ``, false},
	{`W/ "abc"`, ``, false},
	{`a b`, ``, false},
	{"a\x00b", ``, false},
	{"\"a\x7f\"", ``, false},
	{"a\r\n", ``, false},
	{`"a", "b"`, ``, false}, // several tags
	{`"a","b"`, ``, false},
	{`*`, `"*"`, true}, // not a list here: an unquoted field value of etagc bytes
}

func TestNormalize(t *testing.T) {
	for _, tt := range normalizeTests {
		tag, ok := Normalize(tt.in)
		if tag != tt.tag || ok != tt.ok {
			t.Errorf("Normalize(%q) = %q, %v; want %q, %v", tt.in, tag, ok, tt.tag, tt.ok)
		}
	}
}

func TestNotModifiedHeadersAreCanonicalAndSorted(t *testing.T) {
	for _, h := range NotModifiedHeaders {
		if c := http.CanonicalHeaderKey(h); c != h && h != "ETag" { // ETag is the spelling RFC 9110 uses
			t.Errorf("NotModifiedHeaders has %q, want %q", h, c)
		}
	}
	if !slices.IsSorted(NotModifiedHeaders) {
		t.Errorf("NotModifiedHeaders = %q, want it sorted", NotModifiedHeaders)
	}
	for _, h := range []string{"Cache-Control", "Content-Location", "Date", "ETag", "Expires", "Vary"} { // RFC 9110 §15.4.5
		if !slices.Contains(NotModifiedHeaders, h) {
			t.Errorf("NotModifiedHeaders lacks %q", h)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		tags, star, ok := Parse(in) // must not panic
		if !ok || star {
			if tags != nil {
				t.Errorf("Parse(%q) = %q, %v, %v; want nil tags", in, tags, star, ok)
			}
			return
		}
		if again, star, ok := Parse(strings.Join(tags, ", ")); !ok || star || !slices.Equal(again, tags) {
			t.Errorf("Parse(Join(Parse(%q))) = %q, %v, %v; want %q", in, again, star, ok, tags)
		}
		for _, tag := range tags {
			if !strings.Contains(in, tag) {
				t.Errorf("Parse(%q) returned %q, which is not in the input", in, tag)
			}
			if got, ok := Normalize(tag); !ok || got != tag {
				t.Errorf("Normalize(%q) = %q, %v; want it unchanged", tag, got, ok)
			}
		}
	})
}

func FuzzNoneMatch(f *testing.F) {
	for _, tt := range noneMatchTests {
		f.Add(tt.inm, tt.etag)
	}
	for _, tt := range parseTests {
		f.Add(tt.in, `"a"`)
	}
	f.Fuzz(func(t *testing.T, inm, etag string) {
		tags, _, _ := Parse(inm)
		for _, e := range slices.Concat([]string{etag}, tags, fixedTags) {
			if got, want := NoneMatch(inm, e), noneMatch(inm, e); got != want {
				t.Errorf("NoneMatch(%q, %q) = %v, but Parse says %v", inm, e, got, want)
			}
		}
	})
}

func FuzzNormalize(f *testing.F) {
	for _, tt := range normalizeTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		tag, ok := Normalize(in) // must not panic
		if !ok {
			if tag != "" {
				t.Errorf("Normalize(%q) = %q, false; want an empty tag", in, tag)
			}
			return
		}
		if tags, star, ok := Parse(tag); !ok || star || !slices.Equal(tags, []string{tag}) {
			t.Errorf("Parse(Normalize(%q)) = %q, %v, %v; want exactly [%s]", in, tags, star, ok, tag)
		}
		if again, ok := Normalize(tag); !ok || again != tag {
			t.Errorf("Normalize(Normalize(%q)) = %q, %v; want %q", in, again, ok, tag)
		}
		if !NoneMatch(tag, tag) {
			t.Errorf("NoneMatch(%q, %q) = false, want true", tag, tag)
		}
	})
}

func BenchmarkNoneMatch(b *testing.B) {
	etag := Compute([]byte("a typical cached response body"))
	b.Run("weak", func(b *testing.B) { // nginx gzip turned the stored strong tag weak
		inm := "W/" + etag
		b.ReportAllocs()
		for b.Loop() {
			NoneMatch(inm, etag)
		}
	})
	b.Run("list", func(b *testing.B) {
		inm := `W/"OLyp8QZ9mC2dbWB1yHW2sg", "p0m7gtt1cSRsIjG3jDZ5xw", W/` + etag
		b.ReportAllocs()
		for b.Loop() {
			NoneMatch(inm, etag)
		}
	})
}
