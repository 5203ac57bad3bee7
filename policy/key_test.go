package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func key(t *testing.T, r *Rule, target string, h Fields, cookies map[string]string) string {
	t.Helper()
	path, query, _ := strings.Cut(target, "?")
	var cookie func(string) []byte
	if cookies != nil {
		cookie = func(name string) []byte {
			if v, ok := cookies[name]; ok {
				return []byte(v)
			}
			return nil
		}
	}
	return string(r.AppendKey(nil, []byte(path), []byte(query), h, cookie))
}

func TestIgnoredAndSortedQueryGiveOneKey(t *testing.T) {
	r := mustParse(t, "rules:\n  - key: {ignore_query: [\"utm_*\", _], sort_query: true}\n").All()[0]
	a := key(t, r, "/p?pair=A&utm_source=x&_=1", nil, nil)
	b := key(t, r, "/p?_=2&pair=A", nil, nil)
	if a != b || a != "/p?pair=A" {
		t.Errorf("keys %q and %q, want both %q", a, b, "/p?pair=A")
	}
	tests := []struct{ target, want string }{
		{"/p?b=2&a=1&a=0", "/p?a=1&a=0&b=2"}, // by name; a repeated one keeps its order
		{"/p?utm_source=x&_=1", "/p"},
		{"/p?utm%5Fsource=x&u=1", "/p?u=1"}, // names are compared decoded
		{"/p?__=1&_x=2", "/p?__=1&_x=2"},    // "_" is exact, not a prefix
		{"/p?&&a=1&", "/p?a=1"},             // empty parameters carry nothing
		{"/p?utm=1", "/p?utm=1"},
		{"/p", "/p"},
	}
	for _, tt := range tests {
		if got := key(t, r, tt.target, nil, nil); got != tt.want {
			t.Errorf("key(%s) = %q, want %q", tt.target, got, tt.want)
		}
	}
}

func TestWithoutKeyOptionsTheQueryIsKeptAsSent(t *testing.T) {
	r := mustParse(t, "rules:\n  - name: plain\n").All()[0]
	for _, rule := range []*Rule{r, nil} {
		if got := key(t, rule, "/A?b=2&a=1", nil, nil); got != "/A?b=2&a=1" {
			t.Errorf("key = %q, want the path and query unchanged", got)
		}
	}
	if got := key(t, r, "/x?a=1", nil, nil); got == key(t, r, "/x?a=2", nil, nil) {
		t.Error("two queries share a key") // README "How it works", Key: path and query
	}
}

func TestSortingManyParametersStillSorts(t *testing.T) {
	r := mustParse(t, "rules:\n  - key: {sort_query: true}\n").All()[0]
	var params []string
	for i := range 100 {
		params = append(params, "p"+string(rune('a'+i%26))+string(rune('a'+i/26))+"=1")
	}
	want := slices.Clone(params)
	slices.Sort(want)
	slices.Reverse(params)
	if got := key(t, r, "/?"+strings.Join(params, "&"), nil, nil); got != "/?"+strings.Join(want, "&") {
		t.Errorf("key = %q", got)
	}
}

func TestSortingOrdersByNameAndKeepsARepeatedParametersOrder(t *testing.T) {
	r := mustParse(t, "rules:\n  - key: {sort_query: true}\n").All()[0]
	for _, q := range []string{"b=1&a=2&a=1", "a=2&b=1&a=1", "a=2&a=1&b=1"} {
		if got := key(t, r, "/?"+q, nil, nil); got != "/?a=2&a=1&b=1" {
			t.Errorf("?%s: key %q, want /?a=2&a=1&b=1", q, got)
		}
	}
	if got := key(t, r, "/?a=1&a=2", nil, nil); got != "/?a=1&a=2" {
		t.Errorf("?a=1&a=2: key %q, want the order kept", got)
	}
}

func TestIncludedHeadersAndCookiesSplitTheKey(t *testing.T) {
	r := mustParse(t, "rules:\n  - key: {include_headers: [X-Tenant, X-Plan], include_cookies: [currency]}\n").All()[0]
	h := header{"X-Tenant": []byte("acme")}
	got := key(t, r, "/p?a=1", h, map[string]string{"currency": "EUR", "session": "secret"})
	if want := "/p?a=1\nX-Tenant: acme\nX-Plan: \ncookie currency=EUR"; got != want {
		t.Errorf("key = %q, want %q", got, want)
	}
	other := key(t, r, "/p?a=1", header{"X-Tenant": []byte("globex")}, map[string]string{"currency": "EUR"})
	usd := key(t, r, "/p?a=1", h, map[string]string{"currency": "USD"})
	if other == got || usd == got {
		t.Error("a different tenant or currency shares the key")
	}
	if got := key(t, r, "/p", nil, nil); got != "/p\nX-Tenant: \nX-Plan: \ncookie currency=" {
		t.Errorf("key without header or cookie lookups = %q", got)
	}
	forged := key(t, r, "/p", header{"X-Tenant": []byte("a\nX-Plan: gold")}, nil)
	if strings.Count(forged, "\n") != 3 {
		t.Errorf("a header value added a line to the key: %q", forged)
	}
}

func TestCaseInsensitivePathFoldsThePathOnly(t *testing.T) {
	r := mustParse(t, "rules:\n  - key: {case_insensitive_path: true}\n").All()[0]
	if got := key(t, r, "/Assets/Logo.PNG?V=A", nil, nil); got != "/assets/logo.png?V=A" {
		t.Errorf("key = %q", got)
	}
}

func TestAppendKeyAppendsToDst(t *testing.T) {
	r := mustParse(t, designExample).All()[0]
	dst := []byte("GET example.com ")
	got := r.AppendKey(dst, []byte("/api/prices"), []byte("b=1&a=2"), nil, nil)
	if want := "GET example.com /api/prices?a=2&b=1\nX-Tenant: \ncookie currency="; string(got) != want {
		t.Errorf("AppendKey = %q, want %q", got, want)
	}
}

func TestTagsExpandPathSegments(t *testing.T) {
	r := mustParse(t, `rules:
  - tags: ["asset-{2}", "{1}", "all", "{1}-{3}", "{9}", "{1}"]
`).All()[0]
	tests := []struct {
		path string
		want []string
	}{
		{"/assets/logo.png", []string{"asset-logo.png", "assets", "all"}},
		{"/a/b/c", []string{"asset-b", "a", "all", "a-c"}},
		{"/a//c", []string{"a", "all", "a-c"}}, // an empty segment names nothing
		{"/", []string{"all"}},
	}
	for _, tt := range tests {
		if got := r.Tags(tt.path); !slices.Equal(got, tt.want) {
			t.Errorf("Tags(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	var none *Rule
	if none.Tags("/a") != nil {
		t.Error("a nil rule has tags")
	}
}

// tenRules is a realistic file: the benchmarks' requests fall through most of it.
const tenRules = `rules:
  - name: health
    match: {path: /healthz}
    cache: false
  - name: admin
    match: {path_prefix: /admin/}
    cache: false
  - name: uploads
    match: {methods: [POST, PUT]}
    cache: false
  - name: static
    match: {path: "/static/**", methods: [GET, HEAD]}
    ttl: 1h
    key: {case_insensitive_path: true}
    tags: ["static-{2}"]
  - name: images
    match: {path: "/img/*.png"}
    ttl: 24h
  - name: tenant-api
    match:
      host: api.example.com
      header: {X-Tenant: "*"}
      path: "/v1/tenants/*/orders"
    ttl: 5s
    key: {include_headers: [X-Tenant]}
  - name: search
    match: {path_prefix: /search, query: {q: "*"}}
    default_ttl: 30s
    key: {ignore_query: ["utm_*", "fbclid", "_"], sort_query: true}
  - name: legacy
    match: {host: old.example.com}
    response_headers: {set: {Deprecation: "true"}}
  - name: prices
    match:
      methods: [GET, HEAD]
      path: "/api/prices*"
      path_prefix: "/api/"
      host: "example.com"
      header: {X-Tenant: "*"}
      query: {pair: "*"}
    ttl: 2s
    stale_while_revalidate: 30s
    key:
      ignore_query: ["utm_*", "_"]
      sort_query: true
      include_headers: [X-Tenant]
      include_cookies: [currency]
    tags: ["prices-{2}"]
  - name: default
    default_ttl: 10s
`

func benchRequest(tb testing.TB) (*Rules, *fasthttp.Request) {
	rules := mustParse(tb, tenRules)
	var fr fasthttp.Request
	fr.SetRequestURI("http://example.com:8080/api/prices?utm_source=news&pair=EURUSD&_=1712345&depth=10")
	fr.Header.SetMethod(fasthttp.MethodGet) // as parsed off the wire: Method() of an unset method allocates
	fr.Header.Set("X-Tenant", "acme")
	fr.Header.SetCookie("currency", "EUR")
	fr.URI() // parse once, as the server has by the time a handler runs
	return rules, &fr
}

func fastRequest(fr *fasthttp.Request) Request {
	u := fr.URI()
	return Request{Method: fr.Header.Method(), Host: u.Host(), Path: u.Path(), Query: u.QueryString(), Header: &fr.Header}
}

func TestTheHitPathDoesNotAllocate(t *testing.T) {
	rules, fr := benchRequest(t)
	r := rules.Match(fastRequest(fr))
	if name(r) != "prices" {
		t.Fatalf("matched %s, want prices", name(r))
	}
	cookie := fr.Header.Cookie
	dst := make([]byte, 0, 256)
	wantKey := "/api/prices?depth=10&pair=EURUSD\nX-Tenant: acme\ncookie currency=EUR"
	if got := string(r.AppendKey(dst, fr.URI().Path(), fr.URI().QueryString(), &fr.Header, cookie)); got != wantKey {
		t.Fatalf("key = %q, want %q", got, wantKey)
	}
	if n := testing.AllocsPerRun(100, func() { rules.Match(fastRequest(fr)) }); n != 0 {
		t.Errorf("Match: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		dst = r.AppendKey(dst[:0], fr.URI().Path(), fr.URI().QueryString(), &fr.Header, cookie)
	}); n != 0 {
		t.Errorf("AppendKey: %v allocations, want 0", n)
	}
}

func BenchmarkMatch(b *testing.B) {
	rules, fr := benchRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if rules.Match(fastRequest(fr)) == nil {
			b.Fatal("no match")
		}
	}
}

func BenchmarkAppendKey(b *testing.B) {
	rules, fr := benchRequest(b)
	r := rules.Match(fastRequest(fr))
	dst := make([]byte, 0, 256)
	cookie := fr.Header.Cookie
	b.ReportAllocs()
	for b.Loop() {
		dst = r.AppendKey(dst[:0], fr.URI().Path(), fr.URI().QueryString(), &fr.Header, cookie)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(designExample)
	f.Add(tenRules)
	for _, tt := range badFiles {
		if len(tt.src) < 512 { // the 1001-rule file makes minimizing crawl
			f.Add(tt.src)
		}
	}
	f.Fuzz(checkParse)
}

// checkParse is FuzzParse's body: Parse must not panic, and what it accepts must re-validate.
func checkParse(t *testing.T, src string) {
	rules, err := Parse("fuzz.yaml", []byte(src)) // must not panic
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("error %v (%T) is not an *Error", err, err)
		}
		return
	}
	// Accepted rules re-validate: written back from their exported fields, they parse again
	// to the same rules, and using them does not panic.
	all := rules.All()
	out := marshal(all)
	again, err := Parse("again.yaml", []byte(out))
	if err != nil {
		t.Fatalf("the rules did not re-validate: %v\n%s", err, out)
	}
	for i, r := range all {
		if !sameRule(again.All()[i], r) {
			t.Fatalf("rule %d changed on re-parse:\n%s", i, out)
		}
		req := Request{Method: []byte("GET"), Host: []byte("h"), Path: []byte("/a/b"), Query: []byte("x=1&y"), Header: header{}}
		r.Matches(req)
		r.AppendKey(nil, req.Path, req.Query, req.Header, nil)
		r.Tags("/a/b")
	}
}

func TestParseKeySplitsHostTargetAndLines(t *testing.T) {
	tests := []struct {
		key  string
		want KeyParts
	}{
		{"/a?b=1", KeyParts{Target: "/a?b=1", Path: "/a", Query: "b=1"}},
		{"example.com /a?b=1\nX-Region: e u\ncookie c=1", KeyParts{Host: "example.com", Target: "/a?b=1", Path: "/a", Query: "b=1", Lines: "\nX-Region: e u\ncookie c=1"}},
		{"/a\nX-Tenant: a b", KeyParts{Target: "/a", Path: "/a", Lines: "\nX-Tenant: a b"}}, // a line's space is not the host's
	}
	for _, tt := range tests {
		if got := ParseKey(tt.key); got != tt.want {
			t.Errorf("ParseKey(%q) = %+v, want %+v", tt.key, got, tt.want)
		}
	}
}
