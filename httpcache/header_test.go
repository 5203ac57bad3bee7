package httpcache

import (
	"slices"
	"testing"
)

func TestVaryNames(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []string
		star   bool
	}{
		{"no Vary lists nothing", nil, nil, false},
		{"one name is canonical", []string{"accept-encoding"}, []string{"Accept-Encoding"}, false},
		{"a comma list is split, trimmed and sorted", []string{" User-Agent ,accept-encoding,\tAccept"}, []string{"Accept", "Accept-Encoding", "User-Agent"}, false},
		{"repeated lines are merged and deduplicated", []string{"Accept-Encoding", "ACCEPT-ENCODING, Origin"}, []string{"Accept-Encoding", "Origin"}, false},
		{"star is reported", []string{"*"}, nil, true},
		{"star among names is reported with the names", []string{"Origin", "Accept, *"}, []string{"Accept", "Origin"}, true},
		{"empty elements are skipped", []string{",, ,", ""}, nil, false},
		{"elements that are not field names are skipped", []string{`Accept Encoding, "Origin", Cookie`}, []string{"Cookie"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, star := VaryNames(tt.values)
			if !slices.Equal(got, tt.want) || star != tt.star {
				t.Errorf("VaryNames(%q) = %q, %v, want %q, %v", tt.values, got, star, tt.want, tt.star)
			}
		})
	}
}

// encodingTests is shared by TestAnAcceptEncodingValueNormalisesToTheCodingItAcceptsBest and the seeds of FuzzNormalizeEncoding.
var encodingTests = []struct {
	name, in, want string
}{
	{"no header is identity", "", ""},
	{"a browser list picks br", "gzip, deflate, br", "br"},
	{"br with q=0 falls back to gzip", "br;q=0, gzip", "gzip"},
	{"star is br, the first on a tie", "*", "br"},
	{"identity is identity", "identity", ""},
	{"upper case and a q-value are read", "GZIP;q=0.5", "gzip"},
	{"x-gzip is gzip", "x-gzip", "gzip"},
	{"gzip with q=0 is not acceptable", "gzip;q=0", ""},
	{"q=0.000 is not acceptable", "gzip;q=0.000", ""},
	{"q=0.001 is acceptable", "gzip;q=0.001", "gzip"},
	{"the q parameter name is case-insensitive", "br;Q=0, gzip", "gzip"},
	{"whitespace around parameters is tolerated", "br ; q = 0 , gzip ; q = 1", "gzip"},
	{"the higher weight wins", "gzip;q=1, br;q=0.1", "gzip"},
	{"br wins a tie", "gzip, br", "br"},
	{"a malformed q-value makes the coding unacceptable", "br;q=high, gzip;q=", ""},
	{"a q-value with stray characters makes the coding unacceptable", "br;q=1..0, gzip;q=0.5x", ""},
	{"star stands for br beside a refused gzip", "gzip;q=0, *", "br"},
	{"a refused identity gives way to a coding", "identity;q=0, gzip;q=0.2", "gzip"},
	{"star with q=0 is identity", "*;q=0", ""},
	{"an acceptable x-gzip wins over a refused gzip", "gzip;q=0, x-gzip", "gzip"},
	{"unknown codings are identity", "deflate, zstd, compress", ""},
	{"other parameters are ignored", "br;level=5", "br"},
	{"a coding name must match exactly", "brotli, gzipped, xgzip", ""},
	{"garbage is identity", ";;,,=q;\x00\xff", ""},
}

func TestAnAcceptEncodingValueNormalisesToTheCodingItAcceptsBest(t *testing.T) {
	for _, tt := range encodingTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NormalizeEncoding(tt.in); got != tt.want {
				t.Errorf("NormalizeEncoding(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNormalizeEncodingDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { sinkEncoding = NormalizeEncoding("gzip;q=0.8, deflate, BR;q=0.9, *;q=0") }); n != 0 {
		t.Errorf("NormalizeEncoding allocates %v times, want 0", n)
	}
}

func FuzzNormalizeEncoding(f *testing.F) {
	for _, tt := range encodingTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := NormalizeEncoding(in)
		if got != CodingBrotli && got != CodingGzip && got != CodingIdentity {
			t.Fatalf("NormalizeEncoding(%q) = %q, want br, gzip or empty", in, got)
		}
		if upper := NormalizeEncoding(upperASCII(in)); upper != got {
			t.Errorf("NormalizeEncoding(upper(%q)) = %q, want %q", in, upper, got)
		}
	})
}

var sinkEncoding string

func BenchmarkNormalizeEncoding(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkEncoding = NormalizeEncoding("gzip, deflate, br, zstd")
	}
}
