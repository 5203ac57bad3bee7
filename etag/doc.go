// Package etag owns entity-tags and conditional GET/HEAD requests: it computes a strong ETag for
// a body, normalizes an origin's ETag field value so it can be stored and sent, parses
// If-None-Match lists, and decides whether a request gets 304 Not Modified (RFC 9110 §13.1, §13.2.2)
// and which header fields the 304 keeps (RFC 9110 §15.4.5).
//
// Comparison is always weak (RFC 9110 §8.8.3.2): nginx in front of the proxy gzips responses and
// turns a strong `"x"` into `W/"x"`, so clients send back tags the proxy never generated in that form.
//
// Everything here is pure and safe for concurrent use. The package imports nothing from this module
// and knows nothing about caching policy.
package etag
