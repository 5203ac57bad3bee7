package httpcache

import (
	"net/http"
	"strings"
	"time"
)

// The targeted cache-control fields swrproxy obeys, in precedence order (RFC 9213 §2.2: the
// first field of the target list with a valid, non-empty value governs). Decision.Targeted
// holds one of them, or "" when Cache-Control and Expires govern.
const (
	// CDNCacheControl is RFC 9213's field for CDNs and other reverse proxies.
	CDNCacheControl = "CDN-Cache-Control"
	// SurrogateControl is the older convention of Akamai and Fastly (W3C Edge Architecture).
	SurrogateControl = "Surrogate-Control"
)

// targeted returns the directives of the targeted field that governs swrproxy's storage and
// freshness of a response with header h, and the field's name; "" when none does, and
// Cache-Control and Expires govern. A governing field replaces Cache-Control and Expires
// entirely for swrproxy (RFC 9213 §2.2), except that Surrogate-Control does not lift an
// unqualified Cache-Control private: it predates RFC 9213 and its users expect private to hold.
func targeted(h http.Header, cc CacheControl) (CacheControl, string) {
	if t, ok := parseCDNCacheControl(joinValues(h.Values(CDNCacheControl))); ok {
		return t, CDNCacheControl
	}
	if t, ok := parseSurrogateControl(joinValues(h.Values(SurrogateControl))); ok {
		t.Private = cc.Private
		return t, SurrogateControl
	}
	return CacheControl{}, ""
}

// unsetCacheControl is a CacheControl with no directive.
func unsetCacheControl() CacheControl {
	return CacheControl{MaxAge: Unset, SMaxAge: Unset, StaleWhileRevalidate: Unset, StaleIfError: Unset, MaxStale: Unset, MinFresh: Unset}
}

// parseCDNCacheControl reads a CDN-Cache-Control value (RFC 9213 §2.1): a Dictionary
// Structured Field (parseSFDictionary) with Cache-Control's response directives as keys. It
// reports false when the field is absent, empty or not a valid Dictionary, so that it is
// ignored as a whole. Within a valid field:
//
//   - max-age, s-maxage, stale-while-revalidate and stale-if-error count only as a non-negative
//     Integer (capped at 2^31 s, RFC 9111 §1.2.2); any other value, a String "60" included,
//     makes that directive ignored (RFC 9213 §2.1: a directive with an unexpected value type is
//     ignored).
//   - no-store, no-cache, private, must-revalidate and proxy-revalidate restrict caching: they
//     count with any value but the Boolean false (?0), and the qualified forms of no-cache and
//     private act as the unqualified ones.
//   - public, immutable and must-understand widen it: they count only as the Boolean true.
//   - a key given twice keeps its last value (RFC 8941 §4.2.2); unknown keys are ignored.
func parseCDNCacheControl(s string) (CacheControl, bool) {
	dict, ok := parseSFDictionary(s)
	if !ok || len(dict) == 0 {
		return CacheControl{}, false
	}
	cc := unsetCacheControl()
	for _, m := range dict {
		restricts := m.kind != sfBoolean || m.num == 1
		widens := m.kind == sfBoolean && m.num == 1
		switch lookup(m.key) {
		case noStore:
			cc.NoStore = restricts
		case noCache:
			cc.NoCache = restricts
		case private:
			cc.Private = restricts
		case mustRevalidate:
			cc.MustRevalidate = restricts
		case proxyRevalidate:
			cc.ProxyRevalidate = restricts
		case public:
			cc.Public = widens
		case immutable:
			cc.Immutable = widens
		case mustUnderstand:
			cc.MustUnderstand = widens
		case maxAge:
			cc.MaxAge = sfDelta(m)
		case sMaxAge:
			cc.SMaxAge = sfDelta(m)
		case staleWhileRevalidate:
			cc.StaleWhileRevalidate = sfDelta(m)
		case staleIfError:
			cc.StaleIfError = sfDelta(m)
		}
	}
	return cc, true
}

// sfDelta returns a member's value as delta-seconds, or Unset when it is not a non-negative Integer.
func sfDelta(m sfMember) time.Duration {
	if m.kind != sfInteger || m.num < 0 {
		return Unset
	}
	return time.Duration(min(m.num, maxDeltaSeconds)) * time.Second
}

// parseSurrogateControl reads a Surrogate-Control value: a comma-separated list like
// Cache-Control's, of which swrproxy understands max-age (as "N" or "N+M", whose freshness
// extension M is ignored), no-store, stale-while-revalidate and stale-if-error. A directive
// aimed at a named surrogate (";edge1" after it) is not for swrproxy and is skipped, as are
// content="ESI/1.0" and every other directive. A malformed max-age is ignored (not read as 0 as
// in Cache-Control: Surrogate-Control only adds to what Cache-Control says, and an unreadable
// value says nothing). It reports false when nothing in the field is understood: then
// Cache-Control governs.
func parseSurrogateControl(s string) (CacheControl, bool) {
	cc := unsetCacheControl()
	understood := false
	for s != "" {
		var name string
		var a arg
		name, a, s = nextDirective(s)
		if strings.IndexByte(name, ';') >= 0 || strings.IndexByte(a.raw, ';') >= 0 {
			continue // targeted at a named surrogate
		}
		switch lookup(name) {
		case noStore:
			cc.NoStore, understood = true, true
		case maxAge:
			v, ok := a.value()
			v, _, _ = strings.Cut(v, "+")
			if d, ok2 := parseDelta(v); ok && ok2 {
				cc.MaxAge, understood = smallest(cc.MaxAge, d), true
			}
		case staleWhileRevalidate:
			if d, ok := a.delta(); ok {
				cc.StaleWhileRevalidate = smallest(cc.StaleWhileRevalidate, d)
			}
		case staleIfError:
			if d, ok := a.delta(); ok {
				cc.StaleIfError = smallest(cc.StaleIfError, d)
			}
		}
	}
	// It governs only when it says whether and how long to store (max-age, no-store): stale
	// directives alone would otherwise wipe out Cache-Control's lifetime.
	return cc, understood
}
