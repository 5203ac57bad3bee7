package proxy

import (
	"strings"
	"testing"
)

var framingTests = []struct {
	raw  string
	want framing
}{
	{"Host: a\r\n\r\n", framing{hosts: 1}},
	{"Host: a\nhost: b\n\n", framing{hosts: 2}},
	{"Content-Length: 3\r\nCONTENT-LENGTH: 4\r\n\r\n", framing{lengths: 2}},
	{"Transfer-Encoding: chunked\r\n\r\n", framing{encodings: 1, chunkedOnly: true, chunkedLast: true}},
	{"Transfer-Encoding:  Chunked \r\n\r\n", framing{encodings: 1, chunkedOnly: true, chunkedLast: true}},
	{"Transfer-Encoding: gzip, chunked\r\n\r\n", framing{encodings: 1, chunkedLast: true}},
	{"Transfer-Encoding: chunked, gzip\r\n\r\n", framing{encodings: 1}},
	{"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", framing{encodings: 2, chunkedLast: true}},
	{"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", framing{encodings: 2, chunkedLast: true}},
	{"X-A: 1\r\n Host: b\r\n\r\n", framing{fold: true}},
	{"X-A: 1\r\n\tb\r\n\r\n", framing{fold: true}},
	{"X-A: 1\rHost: b\r\n\r\n", framing{bareCR: true, badValue: true}},
	{"Host : a\r\n\r\n", framing{badName: true}}, // not the Host field, and not a token
	{"X-Host: a\r\nHostname: b\r\n\r\n", framing{}},
	{"", framing{}},
	{"X-A\x00: 1\r\n\r\n", framing{badName: true}},
	{"X-A(: 1\r\n\r\n", framing{badName: true}},
	{": 1\r\n\r\n", framing{badName: true}},
	{"X-\xc3\xa9: 1\r\n\r\n", framing{badName: true}},
	{"X-A: 1\x002\r\n\r\n", framing{badValue: true}},
	{"X-A: 1\x7f\r\n\r\n", framing{badValue: true}},
	{"X-A: caf\xc3\xa9\t!\r\n\r\n", framing{}}, // obs-text and HTAB are allowed in values
}

func TestScanFramingCountsTheFieldsThatDelimitARequest(t *testing.T) {
	for _, tt := range framingTests {
		if got := scanFraming([]byte(tt.raw)); got != tt.want {
			t.Errorf("scanFraming(%q) = %+v, want %+v", tt.raw, got, tt.want)
		}
	}
}

func TestScanFramingDoesNotAllocate(t *testing.T) {
	raw := []byte("Host: prices.example\r\nUser-Agent: poller/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nIf-None-Match: W/\"x\"\r\n\r\n")
	if n := testing.AllocsPerRun(100, func() { scanFraming(raw) }); n != 0 {
		t.Errorf("scanFraming allocates %v times", n)
	}
}

// referenceFraming is a second, plainer reading of the same rules, to fuzz against.
func referenceFraming(raw string) framing {
	var f framing
	for i := 0; i < len(raw); i++ {
		if raw[i] == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
			f.bareCR = true
			break
		}
	}
	for _, line := range strings.Split(raw, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			f.fold = true
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.Trim(value, " \t")
		if name == "" || strings.IndexFunc(name, func(r rune) bool {
			return !strings.ContainsRune("!#$%&'*+-.^_`|~", r) && !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
		}) >= 0 {
			f.badName = true
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; c < 0x20 && c != '\t' || c == 0x7f {
				f.badValue = true
			}
		}
		switch strings.ToLower(name) {
		case "host":
			f.hosts++
		case "content-length":
			f.lengths++
		case "transfer-encoding":
			f.encodings++
			f.chunkedOnly = f.encodings == 1 && strings.EqualFold(value, "chunked")
			codings := strings.Split(value, ",")
			f.chunkedLast = strings.EqualFold(strings.Trim(codings[len(codings)-1], " \t"), "chunked")
		}
	}
	return f
}

// FuzzScanFraming: whatever the header bytes, scanFraming never panics and agrees with the plain
// reading of the same rules.
func FuzzScanFraming(f *testing.F) {
	for _, tt := range framingTests {
		f.Add(tt.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, want := scanFraming([]byte(raw)), referenceFraming(raw)
		if strings.ContainsFunc(raw, func(r rune) bool { return r >= 0x80 }) {
			// strings.ToLower folds non-ASCII letters; field names are ASCII tokens.
			want.hosts, want.lengths, want.encodings = got.hosts, got.lengths, got.encodings
			want.chunkedOnly, want.chunkedLast = got.chunkedOnly, got.chunkedLast
		}
		if got != want {
			t.Fatalf("scanFraming(%q) = %+v, the plain reading says %+v", raw, got, want)
		}
	})
}
