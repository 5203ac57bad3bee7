package policy

import "testing"

func TestAmbiguousPathsAreThoseServersResolveDifferently(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/", false},
		{"/static/style.css", false},
		{"/files/a%20b.txt", false},      // an encoded space is only a space
		{"/%70rivate/x", false},          // decodes to /private/x, which rules match
		{"/a.b/c..d/.hidden/..e", false}, // dots inside segments
		{"/account/me/..%2F..%2Fstatic/x.css", true},
		{"/account/me%2fx", true}, // encoded "/", either case
		{"/a/%2E%2E/b", true},     // encoded dots
		{"/a/%2e/b", true},
		{"/a/../b", true},
		{"/a/./b", true},
		{"/a/..", true},
		{"/a/.", true},
		{"/a//b", true},
		{"/a\\b", true},
		{"/a%5Cb", true},
		{"/a%00b", true},
		{"/a%zzb", true}, // a "%" that starts no escape
		{"/a%2", true},
		{"/account/me;.css", true}, // a path parameter: many origins route it to /account/me
		{"/account/me%3B.css", true},
		{"/account/me%3F.css", true}, // an encoded "?" or "#" ends the path for an origin that decodes first
		{"/account/me%23.css", true},
		{"/static/..%252F..%252Faccount", true}, // double encoding
		{"/a%0Ab", true},
		{"/a%7Fb", true},
		{"/caf%C3%A9", false},
	}
	for _, tt := range tests {
		if got := AmbiguousPath([]byte(tt.path)); got != tt.want {
			t.Errorf("AmbiguousPath(%q) = %v, want %v", tt.path, got, tt.want)
		}
		dec, ok := DecodePath(tt.path)
		if ok == tt.want {
			t.Errorf("DecodePath(%q) ok = %v", tt.path, ok)
		}
		if tt.path == "/%70rivate/x" && dec != "/private/x" {
			t.Errorf("DecodePath(%q) = %q, want /private/x", tt.path, dec)
		}
	}
	if n := testing.AllocsPerRun(100, func() { AmbiguousPath([]byte("/api/prices/a%20b/c.css")) }); n != 0 {
		t.Errorf("AmbiguousPath allocates %v times", n)
	}
}

func TestTargetMatchesTheDecodedPathAsTheProxyDoes(t *testing.T) {
	p := &Policy{Rules: mustParse(t, `
rules:
  - match: {path_prefix: /api/}
    key: {ignore_query: [utm_*]}
`)}
	if got := p.Target(nil, "/%61pi/x?a=1&utm_x=2"); got != "/%61pi/x?a=1" {
		t.Errorf("Target of an encoded path = %q, want the rule's key /%%61pi/x?a=1", got)
	}
	if got := p.Target(nil, "/api/..%2Fx?utm_x=2"); got != "/api/..%2Fx?utm_x=2" {
		t.Errorf("Target of an ambiguous path = %q, want it unchanged (no rule applies)", got)
	}
}

func TestACaseInsensitivePathRuleMatchesEitherCase(t *testing.T) {
	rules := mustParse(t, `
rules:
  - match: {path_prefix: /API/, path: "/api/*/Prices"}
    key: {case_insensitive_path: true}
  - match: {path: /Exact}
    key: {case_insensitive_path: true}
`)
	for _, path := range []string{"/api/x/prices", "/API/X/PRICES", "/Api/y/Prices"} {
		if r := rules.Match(Request{Method: []byte("GET"), Path: []byte(path)}); r == nil || r.Index != 0 {
			t.Errorf("%s: matched %v, want the first rule (it keys every case alike)", path, r)
		}
	}
	if r := rules.Match(Request{Method: []byte("GET"), Path: []byte("/EXACT")}); r == nil || r.Index != 1 {
		t.Errorf("/EXACT: matched %v, want the literal rule in either case", r)
	}
	if r := rules.Match(Request{Method: []byte("GET"), Path: []byte("/apix/y/prices")}); r != nil {
		t.Errorf("/apix/y/prices matched rule %d", r.Index)
	}
}

func TestABypassRuleMayMatchOnAnything(t *testing.T) {
	mustParse(t, `
rules:
  - match: {methods: [GET], header: {Authorization: "*"}, query: {nocache: "*"}}
    key: {ignore_query: [nocache]}
    cache: false
`)
}

func TestRouteRefusesAPathAFoldingRuleWouldKeyAsAnotherRules(t *testing.T) {
	p := &Policy{Rules: mustParse(t, `
rules:
  - match: {path_prefix: /account/}
    cache: false
  - match: {path_prefix: /api/}
    ttl: 1s
  - key: {case_insensitive_path: true}
    ttl: 60s
`)}
	req := func(path string) Request { return Request{Method: []byte("GET"), Path: []byte(path)} }
	tests := []struct {
		path      string
		rule      int // -1: none
		ambiguous bool
	}{
		{"/account/me", 0, false},
		{"/ACCOUNT/me", 2, true}, // keyed /account/me by rule 2, which rule 0 owns
		{"/Api/x", 2, true},      // keyed /api/x, rule 1's
		{"/Home", 2, false},      // keyed /home: rule 2's either way
		{"/home", 2, false},
		{"/a/../account/me", 2, true},
	}
	for _, tt := range tests {
		rule, ambiguous := p.Route(req(tt.path), []byte(tt.path))
		if rule == nil || rule.Index != tt.rule || ambiguous != tt.ambiguous {
			t.Errorf("Route(%s) = rule %v, ambiguous %v; want rule %d, %v", tt.path, rule, ambiguous, tt.rule, tt.ambiguous)
		}
	}
	r := req("/Home/Page")
	if n := testing.AllocsPerRun(100, func() { p.Route(r, r.Path) }); n != 0 {
		t.Errorf("Route of a mixed-case path allocates %v times", n)
	}
}
