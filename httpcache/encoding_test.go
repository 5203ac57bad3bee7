package httpcache

import (
	"net/http"
	"strings"
	"testing"
)

var chooseTests = []struct { // TestARequestGetsTheStoredCodingItAcceptsBest and FuzzAcceptEncoding loop over it
	lines    []string // Accept-Encoding lines; nil: no field
	haveBr   bool
	haveGzip bool
	want     string
}{
	{nil, true, true, CodingIdentity}, // no field: identity, as nginx does
	{[]string{""}, true, true, CodingIdentity},
	{[]string{"gzip, deflate, br"}, true, true, CodingBrotli}, // a tie: br first
	{[]string{"gzip, deflate, br, zstd"}, true, true, CodingBrotli},
	{[]string{"gzip, deflate, br"}, false, true, CodingGzip},
	{[]string{"gzip, deflate, br"}, false, false, CodingIdentity},
	{[]string{"br"}, false, true, CodingIdentity}, // gzip not listed: not acceptable
	{[]string{"gzip"}, true, true, CodingGzip},
	{[]string{"x-gzip"}, true, true, CodingGzip},
	{[]string{"GZIP"}, true, true, CodingGzip},
	{[]string{"Br"}, true, true, CodingBrotli},
	{[]string{"br;q=0.5, gzip;q=0.8"}, true, true, CodingGzip}, // the higher weight wins
	{[]string{"br;q=0.8, gzip;q=0.5"}, true, true, CodingBrotli},
	{[]string{"br;q=0.5, gzip;q=0.5"}, true, true, CodingBrotli},
	{[]string{"gzip;q=0.001"}, true, true, CodingGzip},             // identity unlisted weighs less than any listed coding
	{[]string{"gzip;q=0.5, identity"}, true, true, CodingIdentity}, // identity listed at 1
	{[]string{"gzip;q=1, identity;q=1"}, true, true, CodingGzip},   // a tie: the coded form first
	{[]string{"br;q=0"}, true, true, CodingIdentity},
	{[]string{"br;q=0, gzip"}, true, true, CodingGzip},
	{[]string{"br;q=0.000, gzip;q=0.0"}, true, true, CodingIdentity},
	{[]string{"br;q=0.0001"}, true, true, CodingBrotli}, // positive, below a thousandth: still acceptable
	{[]string{"br;Q=0.5"}, true, true, CodingBrotli},
	{[]string{"br ; q = 0.5 "}, true, true, CodingBrotli},
	{[]string{"br;q=high, gzip"}, true, true, CodingGzip}, // malformed weight: not acceptable
	{[]string{"br;q=-1"}, true, true, CodingIdentity},
	{[]string{"br;q=.5"}, true, true, CodingIdentity},
	{[]string{"br;q=2"}, true, true, CodingBrotli}, // above 1: read as 1
	{[]string{"*"}, true, true, CodingBrotli},
	{[]string{"*"}, false, true, CodingGzip},
	{[]string{"*;q=0.5, gzip"}, true, true, CodingGzip},
	{[]string{"*;q=0"}, true, true, CodingIdentity}, // nothing acceptable: identity anyway (RFC 9110 §12.5.3)
	{[]string{"identity;q=0"}, true, true, CodingIdentity},
	{[]string{"identity;q=0"}, false, false, CodingIdentity},
	{[]string{"gzip, identity;q=0"}, true, true, CodingGzip},
	{[]string{"identity;q=0, *;q=0"}, true, true, CodingIdentity},
	{[]string{"gzip;q=0, *"}, true, true, CodingBrotli}, // br by "*"; gzip excluded by name
	{[]string{"gzip;q=0, *"}, false, true, CodingIdentity},
	{[]string{"gzip;q=0, gzip"}, true, true, CodingGzip}, // listed twice: the higher weight
	{[]string{"gzip", "br"}, true, true, CodingBrotli},   // several lines count together
	{[]string{"br;q=0.1", "gzip;q=0.2"}, true, true, CodingGzip},
	{[]string{",, ,gzip,"}, true, true, CodingGzip},
	{[]string{"deflate, compress"}, true, true, CodingIdentity},
	{[]string{"gzip;level=9;q=0.4, br;q=0.3"}, true, true, CodingGzip},
}

func TestARequestGetsTheStoredCodingItAcceptsBest(t *testing.T) {
	for _, tt := range chooseTests {
		var a AcceptEncoding
		for _, l := range tt.lines {
			a.Add(l)
		}
		if got := a.Choose(tt.haveBr, tt.haveGzip); got != tt.want {
			t.Errorf("Accept-Encoding %q (br %v, gzip %v): Choose = %q, want %q", tt.lines, tt.haveBr, tt.haveGzip, got, tt.want)
		}
	}
}

func TestChoosingACodingDoesNotAllocate(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		var a AcceptEncoding
		a.Add("gzip, deflate, br;q=0.9, *;q=0.1")
		a.Add("identity;q=0.5")
		a.Choose(true, true)
	})
	if n != 0 {
		t.Errorf("Add and Choose allocate %v times per call", n)
	}
}

func FuzzAcceptEncoding(f *testing.F) {
	for _, tt := range chooseTests {
		f.Add(strings.Join(tt.lines, "\n"), tt.haveBr, tt.haveGzip)
	}
	f.Fuzz(func(t *testing.T, in string, haveBr, haveGzip bool) {
		var a AcceptEncoding
		for l := range strings.SplitSeq(in, "\n") {
			a.Add(l)
		}
		got := a.Choose(haveBr, haveGzip)
		switch {
		case got == CodingBrotli && !haveBr, got == CodingGzip && !haveGzip:
			t.Fatalf("Choose(%q) = %q, a coding not stored", in, got)
		case got != CodingIdentity && got != CodingBrotli && got != CodingGzip:
			t.Fatalf("Choose(%q) = %q", in, got)
		}
		// Whatever is chosen, the same lines joined into one say the same (RFC 9110 §5.3).
		var b AcceptEncoding
		b.Add(strings.ReplaceAll(in, "\n", ","))
		if again := b.Choose(haveBr, haveGzip); again != got {
			t.Fatalf("Choose(%q) = %q over lines, %q joined", in, got, again)
		}
	})
}

func TestTextJSONScriptsStylesXMLAndSVGAreCompressible(t *testing.T) {
	for _, tt := range []struct {
		ct   string
		want bool
	}{
		{"text/html; charset=utf-8", true}, {"TEXT/PLAIN", true}, {"text/css", true}, {"text/javascript", true},
		{"text/csv", true}, {"text/event-stream", false},
		{"application/json", true}, {"application/JSON; charset=utf-8", true}, {"application/problem+json", true},
		{"application/ld+json", true}, {"application/javascript", true}, {"application/x-javascript", true},
		{"application/ecmascript", true}, {"application/xml", true}, {"application/rss+xml", true},
		{"application/atom+xml", true}, {"image/svg+xml", true}, {"application/x-ndjson", true},
		{"image/png", false}, {"image/jpeg", false}, {"application/octet-stream", false}, {"application/zip", false},
		{"font/woff2", false}, {"video/mp4", false}, {"", false}, {"json", false}, {"application/", false},
		{"application/+json", false}, {"application/jsonx", false},
	} {
		if got := Compressible(tt.ct); got != tt.want {
			t.Errorf("Compressible(%q) = %v, want %v", tt.ct, got, tt.want)
		}
	}
}

func TestEncodingTagKeepsTheWeakPrefix(t *testing.T) {
	for _, tt := range []struct{ tag, coding, want string }{
		{`"abc"`, CodingGzip, `"abc:swr-gzip"`},
		{`"abc"`, CodingBrotli, `"abc:swr-br"`},
		{`W/"abc"`, CodingGzip, `W/"abc:swr-gzip"`},
		{`""`, CodingBrotli, `":swr-br"`},
		{`"abc"`, CodingIdentity, `"abc"`},
	} {
		if got := EncodingTag(tt.tag, tt.coding); got != tt.want {
			t.Errorf("EncodingTag(%s, %q) = %s, want %s", tt.tag, tt.coding, got, tt.want)
		}
	}
}

func TestAContentCodingOtherThanIdentityMeansEncoded(t *testing.T) {
	for _, c := range []struct {
		values []string
		want   bool
	}{
		{nil, false}, {[]string{""}, false}, {[]string{"identity"}, false}, {[]string{" Identity "}, false},
		{[]string{"gzip"}, true}, {[]string{"identity, br"}, true}, {[]string{"identity", "gzip"}, true}, {[]string{" , "}, false},
	} {
		if got := Encoded(c.values); got != c.want {
			t.Errorf("Encoded(%q) = %v, want %v", c.values, got, c.want)
		}
	}
}

func TestOnlyAnIdentityBodyOfACompressibleTypeIsIdentityCompressible(t *testing.T) {
	tests := []struct {
		header http.Header
		want   bool
	}{
		{http.Header{"Content-Type": {"application/json"}}, true},
		{http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"identity"}}, true},
		{http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, false},
		{http.Header{"Content-Type": {"image/png"}}, false},
		{http.Header{"Content-Type": {"image/png", "text/html"}}, true}, // the last line is sent
		{http.Header{}, false},
	}
	for _, tt := range tests {
		if got := IdentityCompressible(tt.header); got != tt.want {
			t.Errorf("IdentityCompressible(%v) = %v, want %v", tt.header, got, tt.want)
		}
	}
}
