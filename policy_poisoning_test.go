package main

import (
	"fmt"
	"net/http"
	"path"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/rawhttp"
)

// A rule's key records request fields and cookies (key.include_headers, key.include_cookies) and
// is matched on the decoded path: a client must not be able to make the origin answer for other
// values than the key records (cache poisoning), nor take a rule that does not fit the route the
// origin serves (web cache deception). Each attack is sent on a raw socket, directly and through
// the repository's nginx; then an ordinary client with the keyed values must be served what the
// origin answers for exactly those values.

const keyedRules = `
rules:
  - match: {path_prefix: /api/}
    key: {include_headers: [X-Region], include_cookies: [currency]}
    ttl: 1h
  - match: {path: "/static/**"}
    ttl: 1h
`

// keyedOrigin answers with what it saw of the keyed fields.
func keyedOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "region=%q cookie=%q", strings.Join(r.Header.Values("X-Region"), ", "), strings.Join(r.Header.Values("Cookie"), "; "))
	})
}

func TestPolicyKeyedFieldsReachTheOriginExactlyAsTheKeyRecordsThem(t *testing.T) {
	t.Parallel()
	o := keyedOrigin(t)
	p := startProxy(t, o.URL, map[string]string{"SWR_POLICY_FILE": writePolicy(t, keyedRules)})
	direct := strings.TrimPrefix(p.URL, "http://")
	via := strings.TrimPrefix(startNginx(t, direct), "http://")
	const victim = `region="eu" cookie="currency=EUR"`
	attacks := []struct{ name, fields string }{
		{"a keyed field on two lines", "X-Region: eu\r\nX-Region: evil\r\nCookie: currency=EUR\r\n"},
		{"a keyed field named by Connection", "X-Region: eu\r\nConnection: X-Region\r\nCookie: currency=EUR\r\n"},
		{"a keyed cookie twice", "X-Region: eu\r\nCookie: currency=EUR; currency=USD\r\n"},
		{"a keyed cookie on a second line", "X-Region: eu\r\nCookie: currency=EUR\r\nCookie: currency=USD; x=1\r\n"},
		{"an unkeyed cookie beside the keyed one", "X-Region: eu\r\nCookie: other=1; currency=EUR\r\n"},
		{"an empty keyed field", "X-Region: eu\r\nX-Region:\r\nCookie: currency=EUR\r\n"},
	}
	for i, tt := range attacks {
		for _, addr := range []string{direct, via} {
			path := fmt.Sprintf("/api/%d-%s", i, strings.ReplaceAll(addr, ":", "-"))
			res, err := rawhttp.Exchange(addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\n"+tt.fields+"\r\n", 300*time.Millisecond)
			if err != nil || len(res.Responses) != 1 {
				t.Fatalf("%s via %s: %v %v", tt.name, addr, res.Responses, err)
			}
			r := get(t, "http://"+addr+path, "X-Region", "eu", "Cookie", "currency=EUR")
			if r.StatusCode != 200 || r.Body != victim {
				t.Errorf("%s via %s: the attacker was answered %q, then a client with X-Region: eu and currency=EUR %q (X-Cache %s); want %q",
					tt.name, addr, res.Bodies(), r.Body, r.Header.Get("X-Cache"), victim)
			}
		}
	}
	// The keyed values are what the origin is asked with: the second fill of a key is a hit.
	if r := get(t, p.URL+"/api/0-"+strings.ReplaceAll(direct, ":", "-"), "X-Region", "eu", "Cookie", "currency=EUR"); r.Header.Get("X-Cache") != "HIT" {
		t.Errorf("the client's own request was not a hit the second time: %s", r.Header.Get("X-Cache"))
	}
}

// ambiguousOrigin routes as Tomcat and many frameworks do: on the raw path (an encoded "/" is part
// of a segment), with path parameters (";…") cut off each segment and dot segments resolved:
// /account/… is the account of the session cookie.
func ambiguousOrigin(t *testing.T) *origin {
	params := regexp.MustCompile(`;[^/]*`)
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if route := path.Clean(params.ReplaceAllString(r.URL.EscapedPath(), "")); strings.HasPrefix(route, "/account/") || route == "/account" {
			if c, err := r.Cookie("session"); err == nil {
				fmt.Fprintf(w, "account of %s", c.Value)
				return
			}
			fmt.Fprint(w, "please log in")
			return
		}
		fmt.Fprint(w, "static")
	})
}

func TestPolicyRulesNeverStoreAPathOriginsResolveDifferently(t *testing.T) {
	t.Parallel()
	o := ambiguousOrigin(t)
	p := startProxy(t, o.URL, map[string]string{"SWR_POLICY_FILE": writePolicy(t, keyedRules)})
	direct := strings.TrimPrefix(p.URL, "http://")
	via := strings.TrimPrefix(startNginx(t, direct), "http://")
	for _, target := range []string{
		"/account/me/..%2F..%2Fstatic/style.css",
		"/account/me/%2E%2E/%2E%2E/static/style.css",
		"/account/me%2F..%2F..%2Fstatic/x.css",
		"/account/me/..%5C..%5Cstatic/x.css",
		"/static/..;/account/me", // Tomcat's "..;" is ".."
		"/static/x.css/..;/..;/..;/account/me",
	} {
		for _, addr := range []string{direct, via} {
			// the victim, lured to the URL
			v, err := rawhttp.Exchange(addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nCookie: session=alice\r\n\r\n", 300*time.Millisecond)
			if err != nil || len(v.Responses) != 1 {
				t.Fatalf("%s via %s: %v %v", target, addr, v.Responses, err)
			}
			// the attacker, without the cookie, on a raw socket and with an HTTP client
			a, err := rawhttp.Exchange(addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if b := a.Bodies(); len(b) != 1 || strings.Contains(b[0], "alice") {
				t.Errorf("%s via %s: the attacker read %q after the victim's visit", target, addr, b)
			}
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+target, nil)
			if res, err := client.Do(req); err == nil {
				res.Body.Close()
				if res.Header.Get("X-Cache") == "HIT" {
					t.Errorf("%s via %s: a HIT for an ambiguous path", target, addr)
				}
			}
		}
		if r := get(t, p.URL+target); !strings.Contains(r.Header.Get("Cache-Status"), "detail=policy-path") {
			t.Errorf("%s: Cache-Status %q, want a pass-through for the path (detail=policy-path)", target, r.Header.Get("Cache-Status"))
		}
	}
	// An ordinary path under the same rule is cached as before.
	get(t, p.URL+"/static/style.css")
	if r := get(t, p.URL+"/static/style.css"); r.Header.Get("X-Cache") != "HIT" || r.Body != "static" {
		t.Errorf("/static/style.css: %s %q, want a HIT", r.Header.Get("X-Cache"), r.Body)
	}
}

func TestPolicyAFoldingRuleNeverStoresWhatAnEarlierRuleBypasses(t *testing.T) {
	t.Parallel()
	o := ambiguousOrigin(t) // routes case-sensitively: /account/ is the cookie's account
	p := startProxy(t, o.URL, map[string]string{"SWR_POLICY_FILE": writePolicy(t, `
rules:
  - match: {path_prefix: /account/}
    cache: false
  - key: {case_insensitive_path: true}
    ttl: 60s
`)})
	v := get(t, p.URL+"/ACCOUNT/me", "Cookie", "session=alice")
	if !strings.Contains(v.Header.Get("Cache-Status"), "detail=policy-path") {
		t.Errorf("/ACCOUNT/me: Cache-Status %q, want a pass-through (the folding rule would key it as /account/me)", v.Header.Get("Cache-Status"))
	}
	for _, path := range []string{"/Account/me", "/account/me", "/ACCOUNT/me"} {
		if r := get(t, p.URL+path); strings.Contains(r.Body, "alice") {
			t.Errorf("%s: the attacker read %q (%s)", path, r.Body, r.Header.Get("X-Cache"))
		}
	}
	// A path only the folding rule owns is still folded and shared.
	get(t, p.URL+"/Static/App.css")
	if r := get(t, p.URL+"/static/app.css"); r.Header.Get("X-Cache") != "HIT" {
		t.Errorf("/static/app.css after /Static/App.css: %s, want a HIT of the folded key", r.Header.Get("X-Cache"))
	}
}
