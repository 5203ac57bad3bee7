package httpcache

import "strings"

// Key returns the cache key of a request: its target (path and query, exactly as sent) prefixed by
// host when the key includes the host. The method is not part of it: HEAD uses the GET entry.
func Key(host, uri string) string {
	if host == "" {
		return uri
	}
	return host + uri
}

// SplitKey undoes Key: a key without a host starts with '/' (or '*'); one with a host has the host first.
func SplitKey(key string) (host, uri string) {
	i := strings.IndexByte(key, '/')
	if i <= 0 {
		return "", key
	}
	return key[:i], key[i:]
}

// OriginFailing reports whether an origin status means the origin is failing rather than
// answering: 5xx, 429 Too Many Requests or 408 Request Timeout. Stale-if-error stands in for such
// answers, and a revalidation that gets one keeps the stored entry.
func OriginFailing(status int) bool {
	return status >= 500 || status == 429 || status == 408
}
