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
	// response without explicit freshness), "set-cookie", "no-freshness"; swrproxy adds "policy"
	// (a policy said cache: false) outside Decide.
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
	// Targeted names the targeted field that governed storage and freshness instead of
	// Cache-Control and Expires (CDNCacheControl or SurrogateControl; RFC 9213 §2.2), or is "".
	// It concerns swrproxy only: clients still get the origin's Cache-Control.
	Targeted string
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
	// gets no heuristic or default freshness, only the origin's explicit word (or a policy's ttl).
	Cookie bool
	// Policy is what the policy that applies to the request says of the response's lifetime and
	// stale windows (see lifetime and staleWindows); the zero value says nothing.
	Policy Override
}

// Decide applies RFC 9111 §3 and §4.2 to a response to a GET with status and header h (from net/http, so canonical keys;
// repeated fields are several values), received at responseTime for a request sent at requestTime.
//
// The checks run in this order and the first that fails gives Reason: status (not final,
// 206, 304, or must-understand with a status swrproxy does not understand), no-store (lifted by
// must-understand with an understood status, RFC 9111 §5.2.2.3), private, vary-star,
// authorization, cookie, set-cookie, then the freshness lifetime (no-freshness, or
// authorization / cookie when only the request's credentials stand in the way).
//
// A valid, non-empty CDN-Cache-Control, else a Surrogate-Control swrproxy understands, governs
// instead of Cache-Control and Expires (see targeted; Decision.Targeted names it).
//
// The lifetime comes from the origin (s-maxage, max-age, Expires), else the RFC 9111 §4.2.2
// heuristic (a tenth of the time since Last-Modified, at most a day), else d.TTL; the last two
// only for heuristically cacheable statuses, never for requests with Authorization, and for
// requests with Cookie only the heuristic, only when the response says public. A request with
// Cookie is stored at all only when the origin says public, s-maxage or max-age: a response to
// it may be personalised without saying so (web cache deception). Expires alone does not
// count: it is HTTP/1.0's way to give a lifetime, not to say the response is the same for
// everyone, and the README ("What is shared, and what is never stored") names only the
// Cache-Control directives. See lifetime.
func Decide(status int, h http.Header, req Req, requestTime, responseTime time.Time, d Defaults) Decision {
	if !storableStatus(status) {
		return Decision{Reason: reasonStatus}
	}
	fieldCC := ParseCacheControl(joinValues(h.Values("Cache-Control")))
	cc, target := targeted(h, fieldCC)
	if target == "" {
		cc = fieldCC
	}
	understood := understoodStatus(status)
	switch {
	case cc.MustUnderstand && !understood:
		return Decision{Reason: reasonStatus} // RFC 9111 §3, §5.2.2.3
	case cc.NoStore && !(cc.MustUnderstand && understood):
		return Decision{Reason: reasonNoStore}
	case cc.Private:
		return Decision{Reason: reasonPrivate}
	case varyStar(h.Values("Vary")):
		return Decision{Reason: reasonVaryStar} // RFC 9111 §4.1: a Vary "*" never matches
	case req.Authorization && !cc.Public && cc.SMaxAge == Unset && !cc.MustRevalidate:
		return Decision{Reason: reasonAuthorization} // RFC 9111 §3.5
	case req.Cookie && !cookieAllowed(cc) && !req.Policy.lifts(status):
		return Decision{Reason: reasonCookie}
	}

	// Fields named by qualified no-cache / private must not be served from cache
	// (RFC 9111 §5.2.2.4, §5.2.2.7); we simply never store them. Naming Set-Cookie there
	// is how an origin says the rest of a cookie-setting response is shareable. These come
	// from Cache-Control even when a targeted field governs: they only remove fields.
	var strip []string
	strip = append(strip, fieldCC.NoCacheFields...)
	strip = append(strip, fieldCC.PrivateFields...)
	slices.Sort(strip)
	strip = slices.Compact(strip)
	if len(h.Values("Set-Cookie")) > 0 && !slices.Contains(strip, "Set-Cookie") {
		return Decision{Reason: reasonSetCookie}
	}

	fresh, src, reason := lifetime(status, h, cc, target == "", req, responseTime, d.TTL)
	swr, sie := staleWindows(cc, d, req.Policy)
	if OriginFailing(status) {
		// A stored error page gets only the stale windows the origin gave it: the operator's
		// defaults are for good copies, and serving a stale error (while revalidating, or in
		// place of a newer error) only prolongs the outage for clients.
		swr, sie = staleWindows(cc, Defaults{}, Override{})
		if target == "" && status >= 500 {
			// A client can make an origin fail with a forwarded field the key does not hold
			// (User-Agent, Accept-*), and many origins put Cache-Control on every response:
			// the error it caused would be everyone's for the whole max-age. A 5xx's
			// Cache-Control lifetime is capped; an origin that targets swrproxy with
			// CDN-Cache-Control or Surrogate-Control has said it means it.
			fresh = min(fresh, MaxErrorFresh)
		}
	}
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
		Targeted:             target,
		StripHeaders:         strip,
	}
}

// cookieAllowed reports whether a response to a request with Cookie may be stored: the origin
// said explicitly that it may be reused, with public, s-maxage or max-age (README "What is
// shared, and what is never stored"), in Cache-Control or in the targeted field that governs (cc is that field's
// directives then). A policy's ttl counts too (Decide checks it beside). Without one, a response chosen by the request's cookies would be served
// to everyone: Varnish's builtin VCL does not cache requests with Cookie at all; we keep those
// the origin vouches for.
func cookieAllowed(cc CacheControl) bool {
	return cc.Public || cc.SMaxAge != Unset || cc.MaxAge != Unset
}

// MaxErrorFresh caps the freshness that Cache-Control or Expires gives a stored 5xx.
const MaxErrorFresh = 10 * time.Second

// storableStatus reports whether a shared cache may store a response with status at all: a
// final status (RFC 9111 §3), but not 206, which needs range assembly to be a complete response,
// nor 304, which updates a stored response rather than being one. Any other status, 5xx and
// unknown ones included, is storable; lifetime gives a status that is not heuristically
// cacheable no lifetime but the origin's explicit one (RFC 9111 §4.2.2), so a 503 is stored
// only when the origin says for how long. Nor the statuses of RFC 6585, which are about one
// request or one client: 429 (§4), 431 (§5) and 511 (§6) MUST NOT be stored, 428 (§3) SHOULD NOT
// (a rate limit or a captive portal stored would turn every client away); nor 408, which is
// about one client's connection (RFC 9110 §15.5.9).
func storableStatus(status int) bool {
	switch status {
	case http.StatusPartialContent, http.StatusNotModified, http.StatusRequestTimeout, http.StatusPreconditionRequired,
		http.StatusTooManyRequests, http.StatusRequestHeaderFieldsTooLarge, http.StatusNetworkAuthenticationRequired:
		return false
	}
	return status >= 200
}

// heuristicallyCacheable reports whether status may be given a heuristic freshness
// lifetime (RFC 9110 §15.1; its 206 is never stored, see storableStatus).
func heuristicallyCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understoodStatus reports whether swrproxy understands and implements the caching
// requirements of status, for must-understand (RFC 9111 §5.2.2.3): the heuristically
// cacheable statuses, whose caching RFC 9110 defines. For any other status must-understand
// forbids storing; 206 and 304 are never stored as responses anyway.
func understoodStatus(status int) bool { return heuristicallyCacheable(status) }

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
