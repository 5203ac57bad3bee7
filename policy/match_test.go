package policy

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// header is a Fields for tests; names are looked up as given.
type header map[string][]byte

func (h header) Peek(name string) []byte { return h[name] }

func req(method, host, target string, h Fields) Request {
	path, query, _ := strings.Cut(target, "?")
	return Request{Method: []byte(method), Host: []byte(host), Path: []byte(path), Query: []byte(query), Header: h}
}

func name(r *Rule) string {
	if r == nil {
		return "<nil>"
	}
	return r.Name
}

func TestFirstMatchingRuleWins(t *testing.T) {
	rules := mustParse(t, `rules:
  - name: one
    match: {path_prefix: /api/prices}
  - name: two
    match: {path_prefix: /api/}
  - name: never            # /api/ covers it, and two comes first
    match: {path_prefix: /api/x}
  - name: all
`)
	tests := []struct{ target, want string }{
		{"/api/prices/1", "one"},
		{"/api/x", "two"},
		{"/api", "all"},
		{"/", "all"},
	}
	for _, tt := range tests {
		if got := name(rules.Match(req("GET", "h", tt.target, nil))); got != tt.want {
			t.Errorf("Match(%s) = %s, want %s", tt.target, got, tt.want)
		}
	}
}

func TestEveryMatchConditionMustHold(t *testing.T) {
	rules := mustParse(t, designExample)
	tenant := header{"X-Tenant": []byte("acme")}
	tests := []struct {
		name   string
		method string
		host   string
		target string
		h      Fields
		want   bool
	}{
		{"all hold", "GET", "example.com", "/api/prices?pair=EURUSD", tenant, true},
		{"HEAD is listed", "HEAD", "example.com", "/api/prices-eu?pair=", tenant, true},
		{"host ignores case and port", "GET", "Example.COM:8080", "/api/prices?pair=x", tenant, true},
		{"method not listed", "POST", "example.com", "/api/prices?pair=x", tenant, false},
		{"methods are case-sensitive", "get", "example.com", "/api/prices?pair=x", tenant, false},
		{"path glob * stops at /", "GET", "example.com", "/api/prices/x?pair=x", tenant, false},
		{"path glob is anchored", "GET", "example.com", "/v2/api/prices?pair=x", tenant, false},
		{"other host", "GET", "example.org", "/api/prices?pair=x", tenant, false},
		{"subdomain is another host", "GET", "www.example.com", "/api/prices?pair=x", tenant, false},
		{"header absent", "GET", "example.com", "/api/prices?pair=x", header{}, false},
		{"header empty", "GET", "example.com", "/api/prices?pair=x", header{"X-Tenant": {}}, false},
		{"no header lookup", "GET", "example.com", "/api/prices?pair=x", nil, false},
		{"query absent", "GET", "example.com", "/api/prices?pairs=x", tenant, false},
		{"query parameter without =", "GET", "example.com", "/api/prices?a=1&pair", tenant, true},
		{"query name encoded", "GET", "example.com", "/api/prices?p%61ir=1", tenant, true},
	}
	for _, tt := range tests {
		r := rules.Match(req(tt.method, tt.host, tt.target, tt.h))
		if got := r != nil; got != tt.want {
			t.Errorf("%s: matched = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestExactHeaderAndQueryValues(t *testing.T) {
	rules := mustParse(t, `rules:
  - name: eur
    match:
      header: {X-Tenant: acme}
      query: {currency: "EUR €", v: "*"}
    key: {include_headers: [X-Tenant]}
`)
	tests := []struct {
		tenant, target string
		want           bool
	}{
		{"acme", "/?currency=EUR+%E2%82%AC&v", true},
		{"acme", "/?v=1&currency=EUR%20€", true},
		{"acme", "/?currency=EUR&v=1", false},
		{"acme", "/?currency=EUR+%E2%82%AC%&v", false},
		{"Acme", "/?currency=EUR+%E2%82%AC&v", false}, // a value is compared exactly
		{"acme", "/?currency=eur&currency=EUR+€&v", true},
	}
	for _, tt := range tests {
		r := rules.Match(req("GET", "h", tt.target, header{"X-Tenant": []byte(tt.tenant)}))
		if got := r != nil; got != tt.want {
			t.Errorf("tenant %s, %s: matched = %v, want %v", tt.tenant, tt.target, got, tt.want)
		}
	}
}

func TestPathStarStopsAtSlashAndDoubleStarDoesNot(t *testing.T) {
	tests := []struct {
		glob, path string
		want       bool
	}{
		{"/api/*", "/api/x", true},
		{"/api/*", "/api/", true},
		{"/api/*", "/api/x/y", false},
		{"/api/*", "/api", false},
		{"/api/**", "/api/x/y", true},
		{"/api/**", "/api/", true},
		{"/api/**", "/api", false},
		{"/**", "/", true},
		{"/**/x.css", "/a/b/x.css", true},
		{"/**/x.css", "/x.css", false}, // "/**/" needs two slashes: no gitignore magic
		{"/*/price", "/v1/price", true},
		{"/*/price", "/v1/v2/price", false},
		{"/*.css", "/a.css", true},
		{"/*.css", "/a/b.css", false},
		{"/**.css", "/a/b.css", true},
		{"/a*b*c", "/aXbYc", true},
		{"/a*b*c", "/abc", true},
		{"/a*b*c", "/ab/c", false},
		{"/a*a*a*a*b", "/" + strings.Repeat("a", 5000), false}, // linear, not exponential
		{"/exact", "/exact", true},
		{"/exact", "/exactly", false},
		{"/***", "/a/b", true}, // three stars are two
	}
	for _, tt := range tests {
		g, err := compileGlob(tt.glob, '/')
		if err != nil {
			t.Fatalf("compileGlob(%q): %v", tt.glob, err)
		}
		if got := g.match([]byte(tt.path)); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.glob, tt.path, got, tt.want)
		}
	}
}

func TestHeaderConditionsMatchNamesInAnyLetterCase(t *testing.T) {
	var h fasthttp.RequestHeader
	h.Set("X-Tenant", "acme")
	rules := mustParse(t, "rules:\n  - match: {header: {x-tenant: acme}}\n    key: {include_headers: [X-Tenant]}\n")
	if rules.Match(Request{Path: []byte("/"), Header: &h}) == nil {
		t.Error("a fasthttp header did not match (Peek should ignore case)")
	}
}

func TestAHostRuleMatchesTheHostAsItIsKeyed(t *testing.T) {
	rules := mustParse(t, "rules:\n  - match: {host: shop.example}\n")
	for _, host := range []string{"shop.example", "Shop.Example:8080", "shop.example.", "shop.example.:80"} {
		if rules.Match(Request{Method: []byte("GET"), Host: []byte(host), Path: []byte("/")}) == nil {
			t.Errorf("Host %q did not match host: shop.example (it is keyed as shop.example)", host)
		}
	}
	if rules.Match(Request{Method: []byte("GET"), Host: []byte("shop.example.."), Path: []byte("/")}) != nil {
		t.Error("shop.example.. matched")
	}
}

// A rule's host is normalised as the key's is: written with a trailing dot or capitals, it
// still names the host its entries are keyed by.
func TestAHostRuleIsNormalisedAsTheKeyHost(t *testing.T) {
	for _, rule := range []string{"shop.example.", "Shop.Example.", "SHOP.EXAMPLE"} {
		rules := mustParse(t, "rules:\n  - match: {host: \""+rule+"\"}\n")
		for _, host := range []string{"shop.example", "Shop.Example:8080", "shop.example."} {
			if rules.Match(Request{Method: []byte("GET"), Host: []byte(host), Path: []byte("/")}) == nil {
				t.Errorf("Host %q did not match host: %q", host, rule)
			}
		}
		if rules.Match(Request{Method: []byte("GET"), Host: []byte("www.shop.example"), Path: []byte("/")}) != nil {
			t.Errorf("www.shop.example matched host: %q", rule)
		}
	}
	ipv6 := mustParse(t, "rules:\n  - match: {host: \"[2001:DB8::1]\"}\n")
	if ipv6.Match(Request{Method: []byte("GET"), Host: []byte("[2001:db8::1]:8080"), Path: []byte("/")}) == nil {
		t.Error("[2001:db8::1]:8080 did not match host: [2001:DB8::1]")
	}
}
