package policy

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRequestEditsStripOrKeepCookiesThenRemoveThenSet(t *testing.T) {
	rs := mustParse(t, `
rules:
  - match: {path_prefix: /strip/}
    strip_cookies: true
    request_headers: {set: {X-Via: swrproxy}, remove: [X-Debug]}
  - match: {path_prefix: /keep/}
    keep_cookies: [currency, lang]
`)
	strip, keep := rs.All()[0], rs.All()[1]
	h := http.Header{"Cookie": {"session=s1; currency=EUR", "lang=de"}, "X-Debug": {"1"}, "X-Via": {"client"}}
	strip.EditRequest(h)
	if want := (http.Header{"X-Via": {"swrproxy"}}); !reflect.DeepEqual(h, want) {
		t.Errorf("strip: %v, want %v", h, want)
	}
	h = http.Header{"Cookie": {"session=s1; currency=EUR", "lang=de"}}
	keep.EditRequest(h)
	if got := h.Values("Cookie"); !reflect.DeepEqual(got, []string{"currency=EUR; lang=de"}) {
		t.Errorf("keep: Cookie %q", got)
	}
	h = http.Header{"Cookie": {"session=s1"}}
	keep.EditRequest(h)
	if _, ok := h["Cookie"]; ok {
		t.Errorf("keep with none of the kept cookies left Cookie %q", h["Cookie"])
	}
}

func TestFillCookiesSendsOnlyKeyedCookiesAndSaysWhetherOthersRemain(t *testing.T) {
	rs := mustParse(t, `
rules:
  - match: {path_prefix: /keyed/}
    key: {include_cookies: [currency]}
  - match: {path_prefix: /kept/}
    key: {include_cookies: [currency]}
    keep_cookies: [ab]
  - {}
`)
	keyed, kept, plain := rs.All()[0], rs.All()[1], rs.All()[2]
	// the keyed values are the key's (the first occurrence): a duplicate never reaches the origin
	first := func(name string) []byte { return Cookie([]byte("currency=EUR; currency=USD"), name) }
	h := http.Header{"Cookie": {"session=s1; currency=EUR; ab=b; currency=USD"}}
	keyed.EditRequest(h)
	if keyed.FillCookies(h, first) || h.Get("Cookie") != "currency=EUR" {
		t.Errorf("keyed: unkeyed or Cookie %q, want currency=EUR alone", h.Get("Cookie"))
	}
	h = http.Header{"Cookie": {"session=s1; currency=EUR; ab=b"}}
	kept.EditRequest(h) // keep_cookies: [ab] must not drop the keyed cookie
	if !kept.FillCookies(h, first) || h.Get("Cookie") != "currency=EUR; ab=b" {
		t.Errorf("kept: Cookie %q, want the keyed and the kept, reported unkeyed", h.Get("Cookie"))
	}
	h = http.Header{"Cookie": {"session=s1; ab=b"}}
	none := func(string) []byte { return nil }
	if keyed.FillCookies(h, none) || h.Get("Cookie") != "" {
		t.Errorf("keyed cookie absent: Cookie %q, want none", h.Get("Cookie"))
	}
	h = http.Header{"Cookie": {"session=s1"}}
	if !plain.FillCookies(h, none) || h.Get("Cookie") != "session=s1" {
		t.Errorf("plain rule: Cookie %q should stay and count", h.Get("Cookie"))
	}
	if (*Rule)(nil).FillCookies(http.Header{}, none) {
		t.Error("no rule, no Cookie: reported a cookie")
	}
}

func TestCookieFindsANameWithoutAllocating(t *testing.T) {
	field := []byte("a=1;  currency=EUR ; b=")
	tests := []struct{ name, want string }{{"a", "1"}, {"currency", "EUR"}, {"b", ""}, {"cur", ""}, {"x", ""}}
	for _, tt := range tests {
		if got := string(Cookie(field, tt.name)); got != tt.want {
			t.Errorf("Cookie(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Cookie(field, "currency") }); n != 0 {
		t.Errorf("Cookie allocates %v times", n)
	}
}

func TestKeyLinesRoundTripToTheFieldsARefreshSends(t *testing.T) {
	rs := mustParse(t, `
rules:
  - key: {include_headers: [X-Tenant, X-Region], include_cookies: [currency, lang]}
`)
	rule := rs.All()[0]
	hdr := header{"X-Tenant": []byte("a\nb%"), "X-Region": nil}
	key := rule.AppendKey(nil, []byte("/p"), []byte("q=1"), hdr, func(n string) []byte {
		if n == "currency" {
			return []byte("EUR")
		}
		return nil
	})
	key = AppendKeyAdd(key, "tenant a")
	target, lines := SplitKeyLines(string(key))
	if target != "/p?q=1" {
		t.Fatalf("target %q", target)
	}
	header, cookies := KeyFields(lines)
	if want := []Pair{{"X-Tenant", "a\nb%"}}; !reflect.DeepEqual(header, want) {
		t.Errorf("header %q, want %q", header, want)
	}
	if want := []Pair{{"currency", "EUR"}}; !reflect.DeepEqual(cookies, want) {
		t.Errorf("cookies %q, want %q", cookies, want)
	}
	if strings.Count(string(key), "\n") != 5 {
		t.Errorf("key %q: a value started a line of its own", key)
	}
}

func TestIncludedCredentialsAreRefusedAtLoad(t *testing.T) {
	for _, src := range []string{
		"rules:\n  - key: {include_headers: [Authorization]}\n",
		"rules:\n  - key: {include_headers: [x-api-key]}\n",
		"rules:\n  - key: {include_cookies: [session_id]}\n",
	} {
		_, err := Parse("p.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), "p.yaml:2:") || !strings.Contains(err.Error(), "key.include_") {
			t.Errorf("%q: err %v, want the line and the field", src, err)
		}
	}
}

func TestFreshnessCarriesTheRuleDurations(t *testing.T) {
	rs := mustParse(t, "rules:\n  - {ttl: 2s, stale_if_error: 0s, cache: false, refresh_ahead: false}\n  - {}\n")
	r := rs.All()[0]
	o := r.Freshness()
	if o.TTL == nil || *o.TTL != 2*time.Second || o.StaleIfError == nil || *o.StaleIfError != 0 || o.DefaultTTL != nil {
		t.Errorf("Freshness %+v", o)
	}
	if !r.Bypass() || r.RefreshesAhead() {
		t.Error("cache: false / refresh_ahead: false not reported")
	}
	if other := rs.All()[1]; other.Bypass() || !other.RefreshesAhead() || (*Rule)(nil).Bypass() || !(*Rule)(nil).RefreshesAhead() {
		t.Error("defaults wrong")
	}
}

func TestUnkeyedCookiesSaysWhatFillCookiesWould(t *testing.T) {
	rs := mustParse(t, `
rules:
  - match: {path_prefix: /strip/}
    strip_cookies: true
    key: {include_cookies: [currency]}
  - match: {path_prefix: /keyed/}
    key: {include_cookies: [currency]}
  - match: {path_prefix: /kept/}
    key: {include_cookies: [currency]}
    keep_cookies: [ab]
  - match: {path_prefix: /keep/}
    keep_cookies: [ab]
  - {}
`)
	var none *Rule
	tests := []struct {
		rule   *Rule
		cookie string
	}{
		{none, "session=1"}, {none, ""},
		{rs.All()[0], "session=1; currency=EUR"}, {rs.All()[1], "session=1; currency=EUR"}, {rs.All()[1], "currency=EUR"},
		{rs.All()[2], "session=1; currency=EUR"}, {rs.All()[2], "ab=1"}, {rs.All()[3], "ab=1; x=2"}, {rs.All()[3], "x=2"},
		{rs.All()[4], "x=2"}, {rs.All()[4], " ; "},
	}
	for _, tt := range tests {
		h := http.Header{}
		var lines [][]byte
		if tt.cookie != "" {
			h.Set("Cookie", tt.cookie)
			lines = [][]byte{[]byte(tt.cookie)}
		}
		tt.rule.EditRequest(h)
		want := tt.rule.FillCookies(h, func(name string) []byte { return Cookie([]byte(tt.cookie), name) })
		if got := tt.rule.UnkeyedCookies(lines); got != want {
			t.Errorf("rule %v, Cookie %q: UnkeyedCookies = %v, FillCookies = %v", tt.rule, tt.cookie, got, want)
		}
	}
	lines := [][]byte{[]byte("a=1; currency=EUR"), []byte("b=2")}
	kept := rs.All()[2]
	if n := testing.AllocsPerRun(100, func() { kept.UnkeyedCookies(lines) }); n != 0 {
		t.Errorf("UnkeyedCookies allocates %v times", n)
	}
}

func TestATTLRuleThatForwardsCookiesIsWarnedAbout(t *testing.T) {
	rs := mustParse(t, `
rules:
  - match: {path_prefix: /a/}
    ttl: 1s
  - match: {path_prefix: /b/}
    ttl: 1s
    strip_cookies: true
  - match: {path_prefix: /c/}
    ttl: 1s
    key: {include_cookies: [currency]}
  - match: {path_prefix: /d/}
    ttl: 1s
    keep_cookies: []
  - match: {path_prefix: /e/}
    default_ttl: 1s
  - match: {path_prefix: /f/}
    ttl: 1s
    key: {include_cookies: [currency]}
    keep_cookies: [ab]
`)
	w := rs.Warnings()
	if len(w) != 2 || !strings.Contains(w[0], "rules.yaml:3: rules[0].ttl: responses to requests with cookies are stored and shared") ||
		!strings.Contains(w[1], "rules[5].ttl") {
		t.Errorf("warnings %q, want one for rules[0] at line 3 and one for rules[5] (its kept cookies are not keyed)", w)
	}
}

func TestOnlyAStoringHostRuleNeedsTheHostInTheKey(t *testing.T) {
	if _, uses := mustParse(t, "rules:\n  - {match: {host: a.example}, cache: false}\n").UsesHost(); uses {
		t.Error("a cache: false host rule was said to need SWR_KEY_HOST")
	}
	if rule, uses := mustParse(t, "rules:\n  - {}\n  - {match: {host: a.example}, ttl: 1s}\n").UsesHost(); !uses || rule.Index != 1 {
		t.Errorf("UsesHost = %v, %v; want rules[1]", rule, uses)
	}
}

func TestCookieReadersAgreeOnSpacingAndEmptyValues(t *testing.T) {
	rs := mustParse(t, `
rules:
  - key: {include_cookies: [c]}
    keep_cookies: [a]
`)
	rule := rs.All()[0]
	for _, field := range []string{"a =1; c= x ", " a=1 ;c=x", "c=x; a=1", "a=; c=x", "a; c=x", "c=; a=1", "c; a=1"} {
		h := http.Header{"Cookie": {field}}
		rule.EditRequest(h)
		fill := rule.FillCookies(h, func(name string) []byte { return Cookie([]byte(field), name) })
		if check := rule.UnkeyedCookies([][]byte{[]byte(field)}); check != fill {
			t.Errorf("Cookie %q: UnkeyedCookies %v, FillCookies %v (sent %q)", field, check, fill, h.Get("Cookie"))
		}
		if v := Cookie([]byte(field), "c"); string(v) != "x" && !strings.HasPrefix(field, "c=;") && !strings.HasPrefix(field, "c;") {
			t.Errorf("Cookie(%q, c) = %q, want x", field, v)
		}
	}
	if v := Cookie([]byte("c=; a=1"), "c"); v != nil {
		t.Errorf("an empty cookie is %q, want absent (nil)", v)
	}
}
