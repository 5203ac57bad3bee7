package httpcache

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// Defaults are the operator's fallbacks (SWR_DEFAULT_TTL, SWR_STALE_WHILE_REVALIDATE, SWR_STALE_IF_ERROR).
// TTL 0 means "store only what the origin marks cacheable" (no heuristic freshness).
// Negative values count as 0.
type Defaults struct{ TTL, StaleWhileRevalidate, StaleIfError time.Duration }

// Decision is what a shared cache may do with one origin response.
//
// When Store is false only Reason is set. When Store is true every duration is within
// [0, 2^31 s], so the sum of all four cannot overflow. Fresh is the lifetime counted from
// the response's origination, not from now: the response is fresh while its current age
// (Age plus the time it has been stored) is below Fresh, then may be served stale while
// revalidating for StaleWhileRevalidate more, or on origin errors for StaleIfError more.
type Decision struct {
	Store bool
	// Reason, when !Store, is a short token for logs and Cache-Status detail: "no-store", "private",
	// "set-cookie", "authorization", "vary-star", "status", "no-freshness".
	Reason string
	Fresh  time.Duration // freshness lifetime (RFC 9111 §4.2.1)
	Age    time.Duration // corrected initial age at response time (RFC 9111 §4.2.3)
	// StaleWhileRevalidate and StaleIfError are the windows after Fresh ends (RFC 5861); 0 when stale serving is forbidden.
	StaleWhileRevalidate, StaleIfError time.Duration
	// StripHeaders are canonical names to drop before storing (Set-Cookie and the fields of qualified
	// no-cache/private), sorted; nil when there are none.
	StripHeaders []string
}

// Reasons a response is not stored; Decision.Reason holds one of them.
const (
	reasonStatus        = "status"
	reasonNoStore       = "no-store"
	reasonPrivate       = "private"
	reasonVaryStar      = "vary-star"
	reasonAuthorization = "authorization"
	reasonSetCookie     = "set-cookie"
	reasonNoFreshness   = "no-freshness"
)

// Req is what Decide needs to know of the request a response answers.
type Req struct {
	// Authorization reports whether the request carried Authorization (RFC 9111 §3.5).
	Authorization bool
	// Cookie reports whether the request carried Cookie: the response may be personalised, so it
	// gets no heuristic or default freshness, only the origin's explicit word.
	Cookie bool
}

// Decide applies RFC 9111 §3 and §4.2 to a response to a GET with status and header h (from net/http, so canonical keys;
// repeated fields are several values), received at responseTime for a request sent at requestTime.
//
// The checks run in this order and the first that fails gives Reason: status, no-store,
// private, vary-star, authorization, set-cookie, no-freshness.
func Decide(status int, h http.Header, req Req, requestTime, responseTime time.Time, d Defaults) Decision {
	if !storableStatus(status) {
		return Decision{Reason: reasonStatus}
	}
	cc := ParseCacheControl(joinValues(h.Values("Cache-Control")))
	switch {
	case cc.NoStore:
		return Decision{Reason: reasonNoStore}
	case cc.Private:
		return Decision{Reason: reasonPrivate}
	case varyStar(h.Values("Vary")):
		return Decision{Reason: reasonVaryStar} // RFC 9111 §4.1: a Vary "*" never matches
	case req.Authorization && !cc.Public && cc.SMaxAge == Unset && !cc.MustRevalidate:
		return Decision{Reason: reasonAuthorization} // RFC 9111 §3.5
	}

	// Fields named by qualified no-cache / private must not be served from cache
	// (RFC 9111 §5.2.2.4, §5.2.2.7); we simply never store them. Naming Set-Cookie there
	// is how an origin says the rest of a cookie-setting response is shareable.
	var strip []string
	strip = append(strip, cc.NoCacheFields...)
	strip = append(strip, cc.PrivateFields...)
	slices.Sort(strip)
	strip = slices.Compact(strip)
	if len(h.Values("Set-Cookie")) > 0 && !slices.Contains(strip, "Set-Cookie") {
		return Decision{Reason: reasonSetCookie}
	}

	fresh, ok := freshness(status, h, cc, responseTime, d.TTL)
	if !ok {
		return Decision{Reason: reasonNoFreshness}
	}
	swr, sie := staleWindows(cc, d)
	if cc.NoCache { // RFC 9111 §5.2.2.4: store, but revalidate before every use
		fresh, swr, sie = 0, 0, 0
	}
	if fresh == 0 && swr == 0 && sie == 0 && h.Get("ETag") == "" && h.Get("Last-Modified") == "" {
		// Stale at once, never served stale, and no validator to revalidate with:
		// every use would be a full fetch anyway.
		return Decision{Reason: reasonNoFreshness}
	}
	return Decision{
		Store:                true,
		Fresh:                fresh,
		Age:                  initialAge(h, requestTime, responseTime),
		StaleWhileRevalidate: swr,
		StaleIfError:         sie,
		StripHeaders:         strip,
	}
}

// storableStatus reports whether a shared cache may store a response with status at all.
// 206 needs range assembly and 304 updates a stored response rather than being one;
// 5xx are never stored so a cache in front of a failing origin does not pin its errors.
func storableStatus(status int) bool {
	return status >= 200 && status < 500 && status != http.StatusPartialContent && status != http.StatusNotModified
}

// heuristicallyCacheable reports whether status may be given a heuristic freshness
// lifetime (RFC 9110 §15.1, without 501 which we never store).
func heuristicallyCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414:
		return true
	}
	return false
}

// freshness returns the freshness lifetime (RFC 9111 §4.2.1) and false when nothing gives one:
// s-maxage, else max-age, else Expires − Date, else the operator's TTL for heuristically
// cacheable statuses.
func freshness(status int, h http.Header, cc CacheControl, responseTime time.Time, ttl time.Duration) (time.Duration, bool) {
	switch {
	case cc.SMaxAge != Unset:
		return cc.SMaxAge, true
	case cc.MaxAge != Unset: // RFC 9111 §5.3: max-age overrides Expires
		return cc.MaxAge, true
	case len(h.Values("Expires")) > 0:
		return expiresLifetime(h, responseTime), true
	case heuristicallyCacheable(status) && ttl > 0:
		return min(ttl, maxDelta), true
	}
	return 0, false
}

// expiresLifetime returns Expires − Date, using responseTime when Date is missing or invalid.
// An invalid Expires (such as "0"), differing repeated Expires lines, or a date in the past
// give 0 (RFC 9111 §5.3, §4.2.1).
func expiresLifetime(h http.Header, responseTime time.Time) time.Duration {
	vals := h.Values("Expires")
	for _, v := range vals[1:] {
		if v != vals[0] {
			return 0
		}
	}
	expires, err := http.ParseTime(vals[0])
	if err != nil {
		return 0
	}
	date := responseTime
	if t, err := http.ParseTime(h.Get("Date")); err == nil {
		date = t
	}
	return clampDelta(expires.Sub(date))
}

// staleWindows returns the stale-while-revalidate and stale-if-error windows (RFC 5861).
//
// must-revalidate and proxy-revalidate forbid serving stale, even over explicit stale-*
// directives (RFC 5861 §3, §4; RFC 9111 §5.2.2.2, §5.2.2.8). Otherwise an explicit directive
// wins, including an explicit 0, and the operator's defaults fill the rest.
//
// s-maxage deliberately does not forbid the defaults, although RFC 9111 §5.2.2.10 says it
// implies proxy-revalidate: read literally, that would turn off stale serving, the point of
// this proxy, for every origin that targets shared caches with s-maxage. We take s-maxage
// as a freshness lifetime only; an origin that wants no stale copies says must-revalidate,
// proxy-revalidate or stale-while-revalidate=0.
func staleWindows(cc CacheControl, d Defaults) (swr, sie time.Duration) {
	if cc.MustRevalidate || cc.ProxyRevalidate {
		return 0, 0
	}
	return explicitOr(cc.StaleWhileRevalidate, d.StaleWhileRevalidate), explicitOr(cc.StaleIfError, d.StaleIfError)
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
// lifetime old. An Age that is not delta-seconds counts as 0.
func initialAge(h http.Header, requestTime, responseTime time.Time) time.Duration {
	age, _ := parseDelta(trimOWS(h.Get("Age")))
	delay := clampDelta(responseTime.Sub(requestTime))
	return min(age+delay, maxDelta) // each term ≤ 2^31 s: no overflow
}

// clampDelta limits d to [0, 2^31 s].
func clampDelta(d time.Duration) time.Duration {
	return min(max(d, 0), maxDelta)
}

// joinValues joins repeated field lines as one list (RFC 9110 §5.3), allocating only when there are several.
func joinValues(vals []string) string {
	switch len(vals) {
	case 0:
		return ""
	case 1:
		return vals[0]
	}
	return strings.Join(vals, ", ")
}

// varyStar reports whether any Vary line lists "*".
func varyStar(vals []string) bool {
	for _, v := range vals {
		for item := range strings.SplitSeq(v, ",") {
			if trimOWS(item) == "*" {
				return true
			}
		}
	}
	return false
}
