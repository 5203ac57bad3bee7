package policy

import (
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzAppendKey feeds client bytes (path, query, a header value, a Cookie field) through the
// key a rule builds, and reads the key back as a refresh does: the key never gains a line a
// value did not come from, the target part never holds a line break, and the fields read back
// are the ones the request carried.
func FuzzAppendKey(f *testing.F) {
	f.Add([]byte("/api/Prices"), []byte("pair=A&utm_source=x&_=1&b=2"), []byte("eu"), []byte("currency=EUR; session=1"))
	f.Add([]byte("/"), []byte("%75tm_x=1&&=&a"), []byte("a\nX-Evil: 1"), []byte("currency=\r\ncookie x=y"))
	f.Add([]byte("/x"), []byte(strings.Repeat("a=1&", 80)), []byte("%0a"), []byte(";;currency"))
	rules, err := Parse("fuzz.yaml", []byte(`
rules:
  - key: {ignore_query: ["utm_*", "_"], sort_query: true, include_headers: [X-Region], include_cookies: [currency], case_insensitive_path: true}
`))
	if err != nil {
		f.Fatal(err)
	}
	rule := rules.All()[0]
	f.Fuzz(func(t *testing.T, path, query, region, cookie []byte) {
		if bytes.ContainsAny(path, "?\n\r") || bytes.ContainsAny(query, "\n\r ") {
			return // not in a request line
		}
		hdr := header{"X-Region": region}
		key := rule.AppendKey(nil, path, query, hdr, func(name string) []byte { return Cookie(cookie, name) })
		target, lines := SplitKeyLines(string(key))
		if strings.Count(lines, "\n") != 2 {
			t.Fatalf("key %q has %d lines, want 2", key, strings.Count(lines, "\n"))
		}
		folded := make([]byte, len(path))
		for i, c := range path {
			folded[i] = lower(c)
		}
		if !strings.HasPrefix(target, string(folded)) {
			t.Fatalf("target %q does not start with the folded path %q", target, path)
		}
		fields, cookies := KeyFields(lines)
		if len(region) > 0 && (len(fields) != 1 || fields[0].Value != string(region)) {
			t.Fatalf("fields %q, want X-Region %q", fields, region)
		}
		if c := Cookie(cookie, "currency"); len(c) > 0 && (len(cookies) != 1 || cookies[0].Value != string(c)) {
			t.Fatalf("cookies %q, want currency %q", cookies, c)
		}
	})
}

// FuzzDecodePath checks the one normalisation rules rely on: for a raw path AmbiguousPath lets
// through, DecodePath (refreshes, PURGE) gives what fasthttp's URI().Path() gives the proxy, and
// that path has no dot segment or empty segment that an origin could resolve otherwise.
func FuzzDecodePath(f *testing.F) {
	for _, s := range []string{"/", "/a%20b", "/a/..%2Fb", "/a/./b", "/%2e%2e/x", "//x", "/a\\b", "/a%zz", "/caf%C3%A9", "/a;b=1/c", "/a+b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !strings.HasPrefix(raw, "/") || strings.ContainsAny(raw, "?#") || strings.IndexFunc(raw, func(r rune) bool { return r <= 0x20 || r == 0x7f }) >= 0 {
			return // not an origin-form path the request guard lets through
		}
		dec, ok := DecodePath(raw)
		if AmbiguousPath([]byte(raw)) {
			if ok {
				t.Fatalf("DecodePath(%q) ok for an ambiguous path", raw)
			}
			return
		}
		if !ok {
			t.Fatalf("DecodePath(%q) refused a path AmbiguousPath accepts", raw)
		}
		var req fasthttp.Request // how the proxy's request URI is decoded and normalised
		req.SetRequestURI(raw)
		if got := string(req.URI().Path()); got != dec {
			t.Fatalf("raw %q: fasthttp decodes %q, DecodePath %q", raw, got, dec)
		}
		if strings.Contains(dec, "/./") || strings.Contains(dec, "/../") || strings.HasSuffix(dec, "/.") || strings.HasSuffix(dec, "/..") {
			t.Fatalf("raw %q decodes to %q, which holds a dot segment", raw, dec)
		}
	})
}
