package httpcache

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// Defaults are the operator's fallbacks (SWR_DEFAULT_TTL, SWR_STALE_WHILE_REVALIDATE, SWR_STALE_IF_ERROR).
// TTL is the fixed lifetime of a response the origin gives none for and whose Last-Modified does
// not give one either (see Decide); 0 turns it off. It never applies to requests with Cookie or
// Authorization. Negative values count as 0.
type Defaults struct{ TTL, StaleWhileRevalidate, StaleIfError time.Duration }

// Decision is what a shared cache may do with one origin response.
//
// When Store is false only Reason is set. When Store is true every duration is within
// [0, 2^31 s], so the sum of all four cannot overflow (a Fresh from Source SourceLastModified
// is at most one day). Fresh is the lifetime counted from the response's origination, not from
// now: the response is fresh while its current age (Age plus the time it has been stored) is
// below Fresh, then may be served stale while revalidating for StaleWhileRevalidate more, or on
// origin errors for StaleIfError more.
type Decision struct {
	Store bool
	// Reason, when !Store, is a short token for logs and Cache-Status detail: "status", "no-store",
	// "private", "vary-star", "authorization" (a request with Authorization and a response that does
	// not allow sharing it, or gives no explicit lifetime), "cookie" (a request with Cookie and a
	// response without explicit freshness), "set-cookie", "no-freshness".
	Reason string
	Fresh  time.Duration // freshness lifetime (RFC 9111 §4.2.1)
	// Source says where Fresh came from: the origin, the Last-Modified heuristic or SWR_DEFAULT_TTL.
	Source Source
	// Guessed reports that Fresh is a heuristic (Source.Heuristic) for a response that does not
	// allow serving it to requests with Cookie (no public, s-maxage or max-age): a request with
	// Cookie must not get it without revalidating it first.
	Guessed bool
	Age     time.Duration // corrected initial age at response time (RFC 9111 §4.2.3)
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
	reasonCookie        = "cookie"
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
// private, vary-star, authorization, cookie, set-cookie, then the freshness lifetime
// (no-freshness, or authorization / cookie when only the request's credentials stand in the way).
//
// The lifetime comes from the origin (s-maxage, max-age, Expires), else the RFC 9111 §4.2.2
// heuristic (a tenth of the time since Last-Modified, at most a day), else d.TTL; the last two
// only for heuristically cacheable statuses, never for requests with Authorization, and for
// requests with Cookie only the heuristic, only when the response says public. A request with
// Cookie is stored at all only when the origin says public, s-maxage or max-age: a response to
// it may be personalised without saying so (web cache deception). Expires alone does not
// count: it is HTTP/1.0's way to give a lifetime, not to say the response is the same for
// everyone, and DESIGN.md names only the Cache-Control directives. See lifetime.
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
	case req.Cookie && !cookieAllowed(cc):
		return Decision{Reason: reasonCookie}
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

	fresh, src, reason := lifetime(status, h, cc, req, responseTime, d.TTL)
	swr, sie := staleWindows(cc, d)
	if cc.NoCache {
		// RFC 9111 §5.2.2.4: store, but revalidate before every use. The lifetime does not
		// matter then, only whether RFC 9111 §3 lets us store the response at all: a
		// heuristically cacheable status does, without any lifetime.
		if reason != "" && heuristicallyCacheable(status) {
			reason = ""
		}
		fresh, src, swr, sie = 0, SourceOrigin, 0, 0
	}
	if reason != "" {
		return Decision{Reason: reason}
	}
	if fresh == 0 && swr == 0 && sie == 0 && h.Get("ETag") == "" && h.Get("Last-Modified") == "" {
		// Stale at once, never served stale, and no validator to revalidate with:
		// every use would be a full fetch anyway.
		return Decision{Reason: reasonNoFreshness}
	}
	return Decision{
		Store:                true,
		Fresh:                fresh,
		Source:               src,
		Guessed:              src.Heuristic() && !cookieAllowed(cc),
		Age:                  initialAge(h, requestTime, responseTime),
		StaleWhileRevalidate: swr,
		StaleIfError:         sie,
		StripHeaders:         strip,
	}
}

// cookieAllowed reports whether a response to a request with Cookie may be stored: the origin
// said explicitly that it may be reused, with public, s-maxage or max-age (DESIGN.md "What is
// never shared"). A valid CDN-Cache-Control (RFC 9213) and a policy rule with a ttl, once they
// exist, count here too. Without one, a response chosen by the request's cookies would be served
// to everyone: Varnish's builtin VCL does not cache requests with Cookie at all; we keep those
// the origin vouches for.
func cookieAllowed(cc CacheControl) bool {
	return cc.Public || cc.SMaxAge != Unset || cc.MaxAge != Unset
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

// OriginFailing reports whether an origin status means the origin is failing rather than
// answering: 5xx, 429 Too Many Requests or 408 Request Timeout. Stale-if-error stands in for such
// answers, and a revalidation that gets one keeps the stored entry.
func OriginFailing(status int) bool {
	return status >= 500 || status == 429 || status == 408
}
