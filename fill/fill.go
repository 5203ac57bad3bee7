// Package fill owns the envelope in which a fill travels between the request path (proxy) and
// the origin fetchers (refresh): the Request copied out of a client's request, and the Result,
// a stored entry or a Pass to stream. It lives apart so that neither of those packages imports
// the other, and so that tiers, a storage package, holds no HTTP types.
package fill

import (
	"io"
	"net/http"

	"github.com/swrproxy/swrproxy/policy"
	"github.com/swrproxy/swrproxy/tiers"
)

// Request is a GET for a cacheable key, with everything copied out of the client's request.
type Request struct {
	Key string // cache key of the URL
	URI string // origin-form target sent to the origin
	// Header holds the request fields to forward: for a client's request, the fill allowlist
	// (proxy's forwardHeader: negotiation fields, credentials, the fields the key varies on, and
	// swrproxy's forwarding fields), each as one line, Accept-Encoding normalised.
	Header http.Header
	// Value returns the request's normalised value of a header (for Vary).
	Value func(name string) string
	// Field returns the client's own value of a request field (its lines joined, trimmed), so
	// that a fill can forward a field the origin turns out to vary on; nil for background
	// requests, which have no client.
	Field func(name string) string
	// Stale is the variant this request would be served if it were fresh enough, or nil: its
	// validators make the origin fetch conditional.
	Stale *tiers.Entry
	// Gen is the object generation seen by the lookup.
	Gen uint64
	// Authorization reports whether the client sent Authorization; such requests are never
	// collapsed with others.
	Authorization bool
	// Cookie reports whether the fill sends a Cookie the key does not hold (the client's cookies
	// after the policy's cookie actions): the response gets no heuristic or default freshness (it
	// may be personalised), only what the origin, or a policy's ttl, says explicitly.
	Cookie bool
	// Rule is the policy rule that applies to the request (nil: none). Matched reports that
	// whoever built the request applied the policy (key, target, request fields); a request
	// rebuilt from a key by a background job has not, and the Filler matches it itself.
	Rule    *policy.Rule
	Matched bool
	// Replay names further request fields the stored entry keeps for its background refreshes,
	// besides the negotiation fields: those the Wasm on_request hook set, which a refresh (that
	// does not call the hook again) must send as the fill did.
	Replay []string
	// Policy is the policy the request was matched under, whose on_response hook judges the
	// origin's answer (nil: none, or not Matched yet).
	Policy *policy.Policy
}

// Result is what a fill produced.
type Result struct {
	// Entry is the stored response to serve, nil when Pass is set.
	Entry *tiers.Entry
	// Pass is an origin response that must not be stored (or is too big), fetched for this
	// request: the caller streams it or closes its Body.
	Pass *Pass
	// Shared reports whether this request got another request's fetch (in process or on another instance).
	Shared bool
	// Revalidated reports whether the origin answered 304 and the stale entry was renewed.
	Revalidated bool
	// NotStored says why a response was not stored (Decision.Reason, "too-big", "invalidated",
	// "stale-if-error": an origin failure that would have replaced a copy servable on error).
	NotStored string
	// Bypass says why the response was fetched for this request alone, by rule: "authorization"
	// (RFC 9111 §3.5), or "cookie" (a lifetime swrproxy guessed is not for a request with
	// Cookie); "" otherwise.
	Bypass string
}

// Pass is an origin response to relay without storing. It may be private to the request it was
// fetched for (Set-Cookie, Cache-Control: private, content chosen by that client's cookies), so
// a filler gives it only to that request, whose caller streams Body or closes it; every other
// request that waited on the same fetch gets one fetched for itself. The exception is Shared, a
// small error page that any waiter may send.
type Pass struct {
	Status int
	Header http.Header
	Body   io.ReadCloser // closing it releases the origin connection; nil when Shared is set
	Length int64         // -1 when unknown
	// Reason is why it was not stored.
	Reason string
	// Shared, when not nil, is the whole body of an origin error (5xx, 429) that is safe to send
	// to every request of the flight: nothing marks it private to the request it was fetched for.
	Shared []byte
}
