package tiers

import (
	"io"
	"net/http"
	"sync/atomic"
)

// The types below are the envelope in which entries travel between the request path (proxy) and the
// origin fetchers (refresh); they live here so that neither of those packages imports the other.

// Request is a GET for a cacheable key, with everything copied out of the client's request.
type Request struct {
	Key string // cache key of the URL
	URI string // origin-form target sent to the origin
	// Header holds the end-to-end request fields to forward (Accept-Encoding already normalised,
	// no conditional or Range fields).
	Header http.Header
	// Value returns the request's normalised value of a header (for Vary).
	Value func(name string) string
	// Stale is the variant this request would be served if it were fresh enough, or nil: its
	// validators make the origin fetch conditional.
	Stale *Entry
	// Gen is the object generation seen by the lookup.
	Gen uint64
	// Authorization reports whether the client sent Authorization; such requests are never
	// collapsed with others.
	Authorization bool
	// Alone asks for a fetch of this request only, not collapsed with others (used after losing the
	// claim on another request's uncacheable response).
	Alone bool
}

// Result is what a fill produced.
type Result struct {
	// Entry is the stored response to serve, nil when Pass is set.
	Entry *Entry
	// Pass is an origin response that must not be stored (or is too big): the caller that claims it
	// streams it; other callers of the same flight must fetch for themselves.
	Pass *Pass
	// Shared reports whether this request got another request's fetch (in process or on another instance).
	Shared bool
	// Revalidated reports whether the origin answered 304 and the stale entry was renewed.
	Revalidated bool
	// NotStored says why a response was not stored (Decision.Reason, "too-big", "invalidated").
	NotStored string
}

// Pass is an origin response to relay without storing. Exactly one caller claims it.
type Pass struct {
	Status int
	Header http.Header
	Body   io.ReadCloser // closing it releases the origin connection
	Length int64         // -1 when unknown
	// Reason is why it was not stored.
	Reason  string
	claimed atomic.Bool
}

// Claim reports whether the caller now owns the response (true for exactly one caller).
func (p *Pass) Claim() bool { return p.claimed.CompareAndSwap(false, true) }
