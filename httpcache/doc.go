// Package httpcache owns the rules of a shared HTTP cache: RFC 9111 (Cache-Control,
// storability, freshness lifetime, Age, HTTP-dates), the stale-serving extensions of RFC 5861
// (stale-while-revalidate, stale-if-error) and the targeted fields that govern swrproxy over
// Cache-Control (CDN-Cache-Control, RFC 9213, a Structured Field of RFC 8941; Surrogate-Control); what a variant is keyed by (Vary names and
// normalised values, Accept-Encoding, credential fields); cache keys (the host part, the
// reserved /_swr prefix); Host validation; and the families of forwarding fields a client may
// not set. (The hop-by-hop field list is upstream's.)
//
// It does no I/O, keeps no state and imports nothing from this module; every function is
// safe for concurrent use.
package httpcache
