// Package httpcache owns the rules of a shared HTTP cache: RFC 9111 (Cache-Control,
// storability, freshness lifetime, Age) and the stale-serving extensions of RFC 5861
// (stale-while-revalidate, stale-if-error), plus the header helpers a variant key needs
// (Vary, Accept-Encoding) and the hop-by-hop field list of RFC 9110 §7.6.1.
//
// It does no I/O, keeps no state and imports nothing from this module; every function is
// safe for concurrent use.
package httpcache
