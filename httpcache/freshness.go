package httpcache

import (
	"net/http"
	"time"
)

// Source says where a Decision's freshness lifetime came from.
type Source uint8

const (
	// SourceOrigin is the origin's explicit word: s-maxage, max-age or Expires (RFC 9111 §4.2.1),
	// or no-cache, which makes the lifetime 0 whatever else the response says.
	SourceOrigin Source = iota
	// SourceLastModified is the RFC 9111 §4.2.2 heuristic: a tenth of the time since Last-Modified.
	SourceLastModified
	// SourceDefaultTTL is the operator's fixed lifetime (SWR_DEFAULT_TTL).
	SourceDefaultTTL
	// SourcePolicy is a policy's ttl (a rule of SWR_POLICY_FILE or a Wasm hook): the operator's
	// explicit word for the route, which counts for requests with Cookie as the origin's does.
	SourcePolicy
	// SourcePolicyDefault is a policy's default_ttl: the route's lifetime when the origin gives
	// none, a guess like SWR_DEFAULT_TTL (never for requests with Cookie or Authorization).
	SourcePolicyDefault
)

// String returns "origin", "last-modified", "default-ttl", "policy" or "policy-default".
func (s Source) String() string {
	switch s {
	case SourcePolicy:
		return "policy"
	case SourcePolicyDefault:
		return "policy-default"
	case SourceLastModified:
		return "last-modified"
	case SourceDefaultTTL:
		return "default-ttl"
	}
	return "origin"
}

// Heuristic reports whether swrproxy, not the origin, chose the lifetime (RFC 9111 §4.2.2 calls
// any lifetime the origin did not give heuristic). A policy's lifetime is not a guess: the
// operator stated it for the route, except a default_ttl, which stands in for the origin's word
// as SWR_DEFAULT_TTL does.
func (s Source) Heuristic() bool {
	return s == SourceLastModified || s == SourceDefaultTTL || s == SourcePolicyDefault
}

// Override is what a policy says of one response's lifetime and stale windows (README
// "Policies", "What each action does": ttl, default_ttl, stale_while_revalidate, stale_if_error); a nil field says
// nothing. The zero value is no policy.
type Override struct {
	TTL, DefaultTTL, StaleWhileRevalidate, StaleIfError *time.Duration
}

// lifts reports whether o gives a lifetime that replaces the origin's for a response with
// status: a ttl, for a heuristically cacheable status only (a policy never makes an error last).
func (o Override) lifts(status int) bool { return o.TTL != nil && heuristicallyCacheable(status) }

// The RFC 9111 §4.2.2 heuristic: a tenth of the time since Last-Modified (the RFC's "typical
// setting", and the default of Apache httpd's CacheLastModifiedFactor and Traffic Server's
// heuristic_lm_factor), at most one day (their CacheMaxExpire and heuristic_max_lifetime).
// A day also keeps us clear of RFC 7234's old rule that a heuristic lifetime over 24 hours needs
// a warning.
const (
	heuristicDivisor = 10
	heuristicMax     = 24 * time.Hour
)

// lifetime returns the freshness lifetime of a response that passed the storage checks, where it
// came from, and, when there is none, the reason it is not stored. The sources, first that
// applies wins (README "How it works", the Freshness paragraph; a policy's ttl and default_ttl:
// "Policies", "What each action does"):
//
//  1. a policy's ttl (Override.TTL), for heuristically cacheable statuses: it replaces the
//     origin's lifetime (not its prohibitions, which Decide checked before: no-store, private,
//     Set-Cookie, Vary "*", Authorization), and counts for requests with Cookie.
//  2. the origin: s-maxage, max-age, Expires − Date (RFC 9111 §4.2.1), of cc, which is the
//     governing targeted field's directives when there is one (useExpires is then false:
//     RFC 9213 §2.2 ignores Expires too). Being explicit, they count for requests with Cookie
//     (see cookieAllowed).
//  3. a policy's default_ttl, for heuristically cacheable statuses, and like SWR_DEFAULT_TTL
//     never for requests with Cookie or Authorization (it knows nothing of the response): a
//     guess (SourcePolicyDefault).
//  4. the Last-Modified heuristic (RFC 9111 §4.2.2), for heuristically cacheable statuses only.
//  5. Defaults.TTL (SWR_DEFAULT_TTL), for heuristically cacheable statuses only.
//
// Requests with Authorization get none of 3 to 5: their response was allowed at all only
// because it says public, s-maxage or must-revalidate (RFC 9111 §3.5), and a lifetime the origin
// did not give is a guess we do not make about one user's data. Requests with Cookie get 4 only
// when the response says public (which RFC 9111 §4.2.2 names as what makes a response
// heuristically cacheable; cookieAllowed let nothing else through without an explicit lifetime),
// and never 3 or 5: blanket guesses that know nothing of the response.
//
// The heuristic goes before SWR_DEFAULT_TTL because it is measured on the resource (a page
// unchanged for a month may be kept longer than one changed a minute ago); the fixed TTL only
// covers responses without a usable Last-Modified. An operator who wants one fixed lifetime
// whatever Last-Modified says gives it with a policy rule's ttl (step 1).
func lifetime(status int, h http.Header, cc CacheControl, useExpires bool, req Req, responseTime time.Time, ttl time.Duration) (time.Duration, Source, string) {
	switch {
	case req.Policy.lifts(status):
		return clampDelta(*req.Policy.TTL), SourcePolicy, ""
	case cc.SMaxAge != Unset:
		return cc.SMaxAge, SourceOrigin, ""
	case cc.MaxAge != Unset: // RFC 9111 §5.3: max-age overrides Expires
		return cc.MaxAge, SourceOrigin, ""
	case useExpires && len(h.Values("Expires")) > 0:
		return expiresLifetime(h, responseTime), SourceOrigin, ""
	}
	if !heuristicallyCacheable(status) {
		return 0, SourceOrigin, reasonNoFreshness // RFC 9111 §4.2.2: no heuristic for other statuses
	}
	if d := req.Policy.DefaultTTL; d != nil && !req.Authorization && !req.Cookie {
		return clampDelta(*d), SourcePolicyDefault, ""
	}
	if d, ok := lastModifiedLifetime(h, responseTime); ok {
		if req.Authorization {
			return 0, SourceOrigin, reasonAuthorization
		}
		return d, SourceLastModified, ""
	}
	if ttl > 0 {
		switch {
		case req.Authorization:
			return 0, SourceOrigin, reasonAuthorization
		case req.Cookie:
			return 0, SourceOrigin, reasonCookie
		}
		return min(ttl, maxDelta), SourceDefaultTTL, ""
	}
	return 0, SourceOrigin, reasonNoFreshness
}

// lastModifiedLifetime returns the heuristic lifetime of RFC 9111 §4.2.2: a tenth of
// Date − Last-Modified (the response time when Date is missing or invalid), truncated to whole
// seconds, at most heuristicMax. It reports false, so that the heuristic does not apply, when
// Last-Modified is missing, not an HTTP-date (parseHTTPDate), repeated with different values, or later than
// Date: RFC 9110 §8.8.2.1 forbids an origin to send that, so such a value says nothing about how
// long the resource has been unchanged. A Last-Modified equal to Date gives 0: just changed.
func lastModifiedLifetime(h http.Header, responseTime time.Time) (time.Duration, bool) {
	vals := h.Values("Last-Modified")
	if len(vals) == 0 {
		return 0, false
	}
	for _, v := range vals[1:] {
		if v != vals[0] {
			return 0, false
		}
	}
	lm, ok := parseHTTPDate(vals[0], responseTime)
	if !ok {
		return 0, false
	}
	date := originDate(h, responseTime) // both times from the origin's clock: no skew between them
	if lm.After(date) {
		return 0, false
	}
	unchanged := date.Sub(lm) // saturates instead of overflowing for far-apart dates
	return min(unchanged/heuristicDivisor, heuristicMax).Truncate(time.Second), true
}

// expiresLifetime returns Expires − Date, using responseTime when Date is missing or invalid.
// An invalid Expires (such as "0", or any value parseHTTPDate refuses), differing repeated Expires lines, or a date in the past
// give 0 (RFC 9111 §5.3, §4.2.1).
func expiresLifetime(h http.Header, responseTime time.Time) time.Duration {
	vals := h.Values("Expires")
	for _, v := range vals[1:] {
		if v != vals[0] {
			return 0
		}
	}
	expires, ok := parseHTTPDate(vals[0], responseTime)
	if !ok {
		return 0
	}
	return clampDelta(expires.Sub(originDate(h, responseTime)))
}

// originDate returns the response's Date (RFC 9110 §6.6.1; its first line), or responseTime
// when Date is missing or not an HTTP-date (parseHTTPDate).
func originDate(h http.Header, responseTime time.Time) time.Time {
	if t, ok := parseHTTPDate(h.Get("Date"), responseTime); ok {
		return t
	}
	return responseTime
}

// staleWindows returns the stale-while-revalidate and stale-if-error windows (RFC 5861).
//
// must-revalidate and proxy-revalidate forbid serving stale, even over explicit stale-*
// directives (RFC 5861 §3, §4; RFC 9111 §5.2.2.2, §5.2.2.8). Otherwise an explicit directive
// wins, including an explicit 0, and the operator's defaults fill the rest.
//
// The defaults apply whatever the source of the lifetime, heuristic ones included: RFC 9111
// §4.2.4 lets a cache serve stale responses when configuration permits it, and the operator's
// SWR_STALE_* settings are that configuration, the same for every response the origin did not
// give windows for. The windows cost the origin nothing more: a stale hit still triggers one
// revalidation, conditional on the Last-Modified that gave the heuristic.
//
// s-maxage deliberately does not forbid the defaults, although RFC 9111 §5.2.2.10 says it
// implies proxy-revalidate: read literally, that would turn off stale serving, the point of
// this proxy, for every origin that targets shared caches with s-maxage. We take s-maxage
// as a freshness lifetime only; an origin that wants no stale copies says must-revalidate,
// proxy-revalidate or stale-while-revalidate=0.
//
// A policy's windows (o) replace both the origin's directives and the defaults, except where the
// origin forbids stale serving altogether (must-revalidate, proxy-revalidate): the operator may
// lengthen or shorten stale serving for a route, not override an origin that says its stale
// copies are wrong.
func staleWindows(cc CacheControl, d Defaults, o Override) (swr, sie time.Duration) {
	if cc.MustRevalidate || cc.ProxyRevalidate {
		return 0, 0
	}
	swr = explicitOr(cc.StaleWhileRevalidate, d.StaleWhileRevalidate)
	sie = explicitOr(cc.StaleIfError, d.StaleIfError)
	if o.StaleWhileRevalidate != nil {
		swr = clampDelta(*o.StaleWhileRevalidate)
	}
	if o.StaleIfError != nil {
		sie = clampDelta(*o.StaleIfError)
	}
	return swr, sie
}

func explicitOr(v, fallback time.Duration) time.Duration {
	if v != Unset {
		return v
	}
	return clampDelta(fallback)
}

// initialAge computes the age of a response when it arrives: its Age field plus the response
// delay (RFC 9111 §4.2.3's corrected_age_value). RFC 9111 also takes the apparent age
// (responseTime − Date) when larger; like Varnish, we leave it out: Date has a resolution of one
// second and an origin clock that runs behind would make every response arrive up to its whole
// lifetime old. An invalid Age counts as 0 (ParseAge).
func initialAge(h http.Header, requestTime, responseTime time.Time) time.Duration {
	age, _ := ParseAge(h.Values("Age"))
	delay := clampDelta(responseTime.Sub(requestTime))
	return min(age+delay, maxDelta) // each term ≤ 2^31 s: no overflow
}

// clampDelta limits d to [0, 2^31 s].
func clampDelta(d time.Duration) time.Duration {
	return min(max(d, 0), maxDelta)
}
