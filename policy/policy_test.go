package policy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// designExample is a rules file that uses every field of a rule the README's "Policies" table
// lists (keep_cookies aside: it excludes strip_cookies), each once.
const designExample = `rules:                       # ordered; the first rule whose match holds applies
  - name: prices             # optional; shown in logs and /_swr/policy
    match:                   # every given condition must hold; an empty match matches all
      methods: [GET, HEAD]
      path: "/api/prices*"   # glob: * any run of characters except "/", ** anything
      path_prefix: "/api/"
      host: "example.com"
      header: {X-Tenant: "*"}    # "*" = present; else exact value
      query: {pair: "*"}
    ttl: 2s                  # overrides the origin's freshness
    default_ttl: 10s         # only when the origin gives none
    stale_while_revalidate: 30s
    stale_if_error: 1h
    cache: false             # bypass: streamed, never stored
    key:
      ignore_query: ["utm_*", "_"]
      sort_query: true
      include_headers: [X-Tenant]
      include_cookies: [currency]
    request_headers: {set: {X-Via: swrproxy}, remove: [X-Debug]}
    strip_cookies: true      # or keep_cookies: [currency]
    response_headers: {set: {X-Frame-Options: DENY}, remove: [Server]}
    tags: ["asset-{2}"]      # {N} = the Nth path segment
    refresh_ahead: false
`

func ptr[T any](v T) *T { return &v }

func mustParse(t testing.TB, src string) *Rules {
	t.Helper()
	rules, err := Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return rules
}

func TestDesignExampleParses(t *testing.T) {
	rules := mustParse(t, designExample)
	all := rules.All()
	if len(all) != 1 {
		t.Fatalf("%d rules, want 1", len(all))
	}
	r := all[0]
	want := Rule{
		Name: "prices", Index: 0, Line: 2,
		Match: Match{
			Methods: []string{"GET", "HEAD"}, Path: "/api/prices*", PathPrefix: "/api/", Host: "example.com",
			Header: []Pair{{"X-Tenant", "*"}}, Query: []Pair{{"pair", "*"}},
		},
		TTL: ptr(2 * time.Second), DefaultTTL: ptr(10 * time.Second),
		StaleWhileRevalidate: ptr(30 * time.Second), StaleIfError: ptr(time.Hour),
		Cache: ptr(false), RefreshAhead: ptr(false),
		Key: Key{
			IgnoreQuery: []string{"utm_*", "_"}, SortQuery: true,
			IncludeHeaders: []string{"X-Tenant"}, IncludeCookies: []string{"currency"},
		},
		RequestHeaders:  HeaderEdits{Set: []Pair{{"X-Via", "swrproxy"}}, Remove: []string{"X-Debug"}},
		ResponseHeaders: HeaderEdits{Set: []Pair{{"X-Frame-Options", "DENY"}}, Remove: []string{"Server"}},
		StripCookies:    true,
		TagTemplates:    []string{"asset-{2}"},
	}
	got := *r
	got.match, got.key, got.tags = matcher{}, keyPlan{}, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rule =\n%+v\nwant\n%+v", got, want)
	}
	if rules.File() != "rules.yaml" {
		t.Errorf("File() = %q", rules.File())
	}
}

func TestLoadReadsTheFileAndNamesItInErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte(designExample), 0o600)
	os.WriteFile(bad, []byte("rules:\n  - ttl: 2x\n"), 0o600)
	if _, err := Load(good); err != nil {
		t.Errorf("Load(good): %v", err)
	}
	_, err := Load(bad)
	if want := "policy: " + bad + ":2: rules[0].ttl: \"2x\" is not a duration"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load(bad) = %v, want prefix %q", err, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, []byte("rules: []\n"+strings.Repeat("#", MaxFileSize)), 0o600)
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(big) = %v, want a size error", err)
	}
}

var badFiles = []struct {
	name, src string
	line      int
	field     string
	msg       string // a part of the message
}{
	{"bad duration", "rules:\n  - ttl: 2x\n", 2, "rules[0].ttl", `"2x" is not a duration`},
	{"negative duration", "rules:\n  - ttl: -1s\n", 2, "rules[0].ttl", `"-1s" must not be negative`},
	{"negative seconds", "rules:\n  - stale_if_error: -5\n", 2, "rules[0].stale_if_error", `"-5" must not be negative`},
	{"duration as list", "rules:\n  - default_ttl: [1]\n", 2, "rules[0].default_ttl", "is a list, want a single value"},
	{"unknown rule field", "rules:\n  - name: a\n    tll: 2s\n", 3, "rules[0].tll", "unknown field"},
	{"unknown match field", "rules:\n  - match:\n      paths: /a\n", 3, "rules[0].match.paths", "unknown field"},
	{"unknown key field", "rules:\n  - key: {sort: true}\n", 2, "rules[0].key.sort", "unknown field"},
	{"unknown top field", "rule:\n  - ttl: 1s\n", 1, "rule", "unknown field"},
	{"missing rules", "{}\n", 1, "rules", "missing"},
	{"empty file", "", 1, "rules", "missing"},
	{"rules not a list", "rules: {a: 1}\n", 1, "rules", "is a mapping, want a list"},
	{"duplicate key", "rules:\n  - ttl: 1s\n    ttl: 2s\n", 3, "rules[0].ttl", "given twice"},
	{"bad method", "rules:\n  - match: {methods: [GET, \"PO ST\"]}\n", 2, "rules[0].match.methods[1]", `"PO ST" is not a method`},
	{"bad header name", "rules:\n  - match: {header: {\"X Tenant\": \"*\"}}\n", 2, "rules[0].match.header.X Tenant", `"X Tenant" is not a header name`},
	{"empty header value", "rules:\n  - match: {header: {X-A: \"\"}}\n", 2, "rules[0].match.header.X-A", "is empty"},
	{"bad include header", "rules:\n  - key:\n      include_headers: [\"a:b\"]\n", 3, "rules[0].key.include_headers[0]", `"a:b" is not a header name`},
	{"bad set header value", "rules:\n  - response_headers:\n      set: {X-A: \"a\\r\\nB: c\"}\n", 3, "rules[0].response_headers.set.X-A", "is not a header value"},
	{"bad remove header", "rules:\n  - request_headers: {remove: [\"\"]}\n", 2, "rules[0].request_headers.remove[0]", `"" is not a header name`},
	{"bad cookie name", "rules:\n  - keep_cookies: [\"a=b\"]\n", 2, "rules[0].keep_cookies[0]", `"a=b" is not a cookie name`},
	{"strip and keep cookies", "rules:\n  - strip_cookies: true\n    keep_cookies: [a]\n", 2, "rules[0].strip_cookies", "exclude each other"},
	{"bad bool", "rules:\n  - cache: nope\n", 2, "rules[0].cache", `"nope" is not a boolean`},
	{"quoted bool", "rules:\n  - key: {sort_query: \"true\"}\n", 2, "rules[0].key.sort_query", `"true" is not a boolean`},
	{"tag zero", "rules:\n  - tags: [\"a-{0}\"]\n", 2, "rules[0].tags[0]", `"a-{0}" is not a tag template`},
	{"tag name", "rules:\n  - tags: [ok, \"a-{x}\"]\n", 2, "rules[0].tags[1]", `"a-{x}" is not a tag template`},
	{"tag unclosed", "rules:\n  - tags: [\"a-{1\"]\n", 2, "rules[0].tags[0]", "is not a tag template"},
	{"tag empty", "rules:\n  - tags: [\"\"]\n", 2, "rules[0].tags[0]", `"" is empty`},
	{"path not absolute", "rules:\n  - match: {path: api/*}\n", 2, "rules[0].match.path", `"api/*" does not start with "/"`},
	{"path that cannot match", "rules:\n  - match: {path: \"*.css\"}\n", 2, "rules[0].match.path", `"*.css" does not start with "/" or "**"`},
	{"path glob too long", "rules:\n  - match: {path: \"/" + strings.Repeat("a", 300) + "\"}\n", 2, "rules[0].match.path", "glob too long"},
	{"empty ignore glob", "rules:\n  - key: {ignore_query: [\"\"]}\n", 2, "rules[0].key.ignore_query[0]", "empty glob"},
	{"prefix not absolute", "rules:\n  - match: {path_prefix: api}\n", 2, "rules[0].match.path_prefix", `"api" does not start with "/"`},
	{"host with port", "rules:\n  - match: {host: \"a.com:80\"}\n", 2, "rules[0].match.host", `"a.com:80" is not a host name`},
	{"IPv6 host with port", "rules:\n  - match: {host: \"[::1]:80\"}\n", 2, "rules[0].match.host", `"[::1]:80" is not a host name`},
	{"host with an empty port", "rules:\n  - match: {host: \"a.com:\"}\n", 2, "rules[0].match.host", `"a.com:" is not a host name`},
	{"host with an empty label", "rules:\n  - match: {host: \"a..com\"}\n", 2, "rules[0].match.host", `"a..com" is not a host name`},
	{"alias", "rules:\n  - &a {ttl: 1s}\n  - *a\n", 3, "rules[1]", "aliases are not supported"},
	{"merge key", "base: &b {ttl: 1s}\nrules:\n  - <<: *b\n", 1, "base", "unknown field"},
	{"second document", "rules: []\n---\nrules: []\n", 2, "", "a second YAML document"},
	{"syntax error", "rules:\n  - ttl: 1s\n\tbad: 1\n", 2, "", "invalid YAML"}, // yaml.v3 reports the line before the tab
	{"third rule bad", "rules:\n  - {}\n  - {}\n  - match: {query: {\"\": \"*\"}}\n", 4, "rules[2].match.query", "parameter name is empty"},
	{"lower-case method", "rules:\n  - match:\n      methods:\n        - GET\n        - post\n", 5, "rules[0].match.methods[1]", `"post" is not upper case`},
	{"set framing header", "rules:\n  - request_headers:\n      set: {Transfer-Encoding: chunked}\n", 3, "rules[0].request_headers.set.Transfer-Encoding", "may not be edited"},
	{"remove framing header", "rules:\n  - response_headers: {remove: [Server, content-length]}\n", 2, "rules[0].response_headers.remove[1]", `"content-length" may not be edited`},
	{"bypass host rule without SWR_KEY_HOST is fine, a GET-only storing one is not", "rules:\n  - {match: {host: a.example}, cache: false}\n  - match: {methods: [GET]}\n", 3, "rules[1].match.methods", "lists GET without HEAD"},
	{"GET without HEAD", "rules:\n  - match: {methods: [GET]}\n", 2, "rules[0].match.methods", "lists GET without HEAD"},
	{"HEAD without GET", "rules:\n  - match:\n      methods: [HEAD, POST]\n    ttl: 1s\n", 3, "rules[0].match.methods", "lists HEAD without GET"},
	{"match header not keyed", "rules:\n  - match:\n      header: {X-Beta: \"1\"}\n    key: {include_headers: [X-Other]}\n", 3, "rules[0].match.header.X-Beta", "is not in key.include_headers"},
	{"match query ignored", "rules:\n  - match:\n      query: {debug: \"1\"}\n    key: {ignore_query: [\"deb*\"]}\n", 3, "rules[0].match.query.debug", "left out of the key"},
	{"keyed forwarding field", "rules:\n  - key: {include_headers: [X-Region, x-forwarded-host]}\n", 2, "rules[0].key.include_headers[1]", "is a forwarding field"},
	{"keyed hop-by-hop field", "rules:\n  - key: {include_headers: [connection]}\n", 2, "rules[0].key.include_headers[0]", "belongs to the connection"},
	{"keyed host", "rules:\n  - key: {include_headers: [Host]}\n", 2, "rules[0].key.include_headers[0]", "keyed by SWR_KEY_HOST"},
	{"keyed anti-forgery field", "rules:\n  - key: {include_headers: [X-XSRF-Check]}\n", 2, "rules[0].key.include_headers[0]", "carries credentials"},
	{"keyed session cookie", "rules:\n  - key: {include_cookies: [currency, PHPSESSID]}\n", 2, "rules[0].key.include_cookies[1]", "looks like a credential"},
	{"keyed jwt cookie", "rules:\n  - key: {include_cookies: [my_jwt]}\n", 2, "rules[0].key.include_cookies[0]", "looks like a credential"},
	{"too many rules", "rules: [" + strings.Repeat("{},", MaxRules) + "{}]\n", 1, "rules", "more than 1000"},
}

func TestBadValuesAreRejectedWithLineAndField(t *testing.T) {
	for _, tt := range badFiles {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := Parse("rules.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse accepted it: %d rules", len(rules.All()))
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if pe.File != "rules.yaml" || pe.Line != tt.line || pe.Field != tt.field || !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("error = %q\nwant line %d, field %q, message containing %q", err, tt.line, tt.field, tt.msg)
			}
			prefix := "policy: rules.yaml:" + strconv.Itoa(tt.line) + ": "
			if tt.field != "" {
				prefix += tt.field + ": "
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error = %q, want prefix %q", err, prefix)
			}
		})
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	_, err := Parse("rules.yaml", []byte("rules:\n  - ttl: 2x\n  - cache: maybe\n    wat: 1\n"))
	var n int
	for _, want := range []string{"rules.yaml:2: rules[0].ttl", "rules.yaml:3: rules[1].cache", "rules.yaml:4: rules[1].wat"} {
		if err != nil && strings.Contains(err.Error(), want) {
			n++
		} else {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestDurationsAcceptGoSyntaxAndSeconds(t *testing.T) {
	r := mustParse(t, "rules:\n  - ttl: 90\n    default_ttl: 1.5\n    stale_if_error: 1h30m\n    stale_while_revalidate: 0\n").All()[0]
	if *r.TTL != 90*time.Second || *r.DefaultTTL != 1500*time.Millisecond || *r.StaleIfError != 90*time.Minute || *r.StaleWhileRevalidate != 0 {
		t.Errorf("durations = %v %v %v %v", *r.TTL, *r.DefaultTTL, *r.StaleIfError, *r.StaleWhileRevalidate)
	}
	if r.Cache != nil || r.RefreshAhead != nil {
		t.Errorf("absent cache/refresh_ahead = %v %v, want nil", r.Cache, r.RefreshAhead)
	}
}

func TestAnEmptyMatchMatchesEverything(t *testing.T) {
	rules := mustParse(t, "rules:\n  - name: a\n    match:\n  - name: b\n")
	if got := name(rules.Match(Request{Method: []byte("DELETE"), Path: []byte("/x")})); got != "a" {
		t.Errorf("Match = %s, want a", got)
	}
}

func TestEmptyRulesMatchNothing(t *testing.T) {
	rules := mustParse(t, "rules: []\n")
	if got := rules.Match(Request{Path: []byte("/")}); got != nil {
		t.Errorf("Match = %v, want nil", got)
	}
	var none *Rules
	if none.Match(Request{}) != nil || none.All() != nil {
		t.Error("a nil *Rules matched something")
	}
}
