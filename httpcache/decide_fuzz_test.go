package httpcache

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzDecide feeds Decide origin bytes: it must not panic, and whatever the origin sends the
// Decision keeps its documented bounds and never gives a request with credentials a lifetime
// the origin did not give explicitly.
func FuzzDecide(f *testing.F) {
	for _, tt := range decideTests {
		d := std
		if tt.d != nil {
			d = *tt.d
		}
		var v [10]string
		for i, name := range fuzzFields {
			v[i] = strings.Join(tt.header.Values(name), "\n")
		}
		f.Add(tt.status, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], tt.req.Authorization, tt.req.Cookie,
			int64(d.TTL), int64(d.StaleWhileRevalidate), int64(d.StaleIfError), int64(tt.delay))
	}
	f.Fuzz(func(t *testing.T, status int, cc, expires, date, lastModified, age, vary, setCookie, etag, cdn, surrogate string,
		auth, cookie bool, ttl, swr, sie, delay int64) {
		h := http.Header{}
		for i, v := range []string{cc, expires, date, lastModified, age, vary, setCookie, etag, cdn, surrogate} {
			if v != "" {
				h[fuzzFields[i]] = strings.Split(v, "\n")
			}
		}
		req := Req{Authorization: auth, Cookie: cookie}
		defaults := Defaults{TTL: time.Duration(ttl), StaleWhileRevalidate: time.Duration(swr), StaleIfError: time.Duration(sie)}
		got := Decide(status, h, req, now.Add(-time.Duration(delay)), now, defaults) // must not panic

		if !got.Store {
			if !slices.Contains(reasons, got.Reason) {
				t.Fatalf("Reason %q is not one of the documented %q", got.Reason, reasons)
			}
			if !reflect.DeepEqual(got, Decision{Reason: got.Reason}) {
				t.Fatalf("a Decision not to store sets more than Reason: %+v", got)
			}
			return
		}
		if got.Reason != "" {
			t.Fatalf("a stored Decision has Reason %q", got.Reason)
		}
		for name, d := range map[string]time.Duration{"Fresh": got.Fresh, "Age": got.Age,
			"StaleWhileRevalidate": got.StaleWhileRevalidate, "StaleIfError": got.StaleIfError} {
			if d < 0 || d > maxDelta {
				t.Fatalf("%s = %v, want within [0, %v]", name, d, maxDelta)
			}
		}
		if !storableStatus(status) {
			t.Fatalf("status %d stored", status)
		}
		parsed := ParseCacheControl(strings.Join(h.Values("Cache-Control"), ", "))
		explicitExpires := len(h.Values("Expires")) > 0
		if gov, target := targeted(h, parsed); target != "" { // RFC 9213 §2.2: it replaces both
			parsed, explicitExpires = gov, false
		}
		if got.Targeted != "" && got.Targeted != CDNCacheControl && got.Targeted != SurrogateControl {
			t.Fatalf("Targeted %q", got.Targeted)
		}
		if !understoodStatus(status) && parsed.MustUnderstand {
			t.Fatalf("must-understand stored status %d", status)
		}
		if req.Cookie && !cookieAllowed(parsed) {
			t.Fatalf("a response to a request with Cookie stored without public, s-maxage or max-age: %+v", got)
		}
		switch got.Source {
		case SourceOrigin:
		case SourceLastModified, SourceDefaultTTL:
			switch {
			case req.Authorization:
				t.Fatalf("a request with Authorization got a %s lifetime", got.Source)
			case !heuristicallyCacheable(status):
				t.Fatalf("status %d got a %s lifetime", status, got.Source)
			case parsed.SMaxAge != Unset || parsed.MaxAge != Unset || explicitExpires:
				t.Fatalf("a %s lifetime despite explicit freshness (RFC 9111 §4.2.2)", got.Source)
			case got.Source == SourceLastModified && got.Fresh > heuristicMax:
				t.Fatalf("heuristic lifetime %v over the cap %v", got.Fresh, heuristicMax)
			case got.Source == SourceLastModified && got.Fresh%time.Second != 0:
				t.Fatalf("heuristic lifetime %v is not whole seconds", got.Fresh)
			case got.Source == SourceDefaultTTL && (req.Cookie || got.Fresh != min(defaults.TTL, maxDelta)):
				t.Fatalf("default-TTL lifetime %v with TTL %v, Cookie %v", got.Fresh, defaults.TTL, req.Cookie)
			}
		default:
			t.Fatalf("unknown Source %d", got.Source)
		}
		if parsed.NoCache && (got.Fresh != 0 || got.StaleWhileRevalidate != 0 || got.StaleIfError != 0) {
			t.Fatalf("no-cache stored with lifetime or windows: %+v", got)
		}
	})
}
