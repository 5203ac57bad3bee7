package httpcache

import "strings"

// KeySeparator separates the host from the request target in a cache key that includes the host
// (SWR_KEY_HOST). A space can occur neither in a valid Host (ValidHost) nor in a request target
// the proxy accepts (upstream.ValidTarget forbids white space), so a key splits one way only:
// "a.example /b/c" can never be read as "a.example/b" + "/c".
const KeySeparator = ' '

// Key returns the cache key of a request: its target (path and query, exactly as sent), prefixed
// by the host and KeySeparator when the key includes the host (host must be ValidHost's
// normalised form). The method is not part of it: HEAD uses the GET entry.
func Key(host, uri string) string {
	if host == "" {
		return uri
	}
	return host + string(KeySeparator) + uri
}

// SplitKey undoes Key: a key without a host is the target itself; one with a host is the host,
// KeySeparator and the target.
func SplitKey(key string) (host, uri string) {
	if strings.HasPrefix(key, "/") {
		return "", key // a target (whose policy lines may hold spaces), no host
	}
	if h, u, ok := strings.Cut(key, string(KeySeparator)); ok {
		return h, u
	}
	return "", key
}

// AppendKeyHost appends to b the host part of the cache key (SWR_KEY_HOST) of a request whose
// Host field is host, on a TLS connection or not: the host as AppendHost normalises it, or
// nothing when it is empty or not valid (the request guard refuses those before). Every place
// that keys a request by its host (lookups, fills, write invalidations, PURGE) uses it, so they
// all name the same entry.
func AppendKeyHost(b, host []byte, tls bool) []byte {
	if kb, ok := AppendHost(b, host, DefaultPort(tls)); ok {
		return kb
	}
	return b
}

// ReservedPrefix is the path prefix of swrproxy's own endpoints. A path under it, in any letter
// case, is never looked up in the cache nor forwarded to the origin.
const ReservedPrefix = "/_swr"

// Reserved reports whether the (decoded, normalised) path is ReservedPrefix or under it
// ("/_swr", "/_SWR/x"; not "/_swrx"). It does not allocate.
func Reserved(path []byte) bool {
	return HasReservedPrefix(path) && (len(path) == len(ReservedPrefix) || path[len(ReservedPrefix)] == '/')
}

// HasReservedPrefix reports whether path starts with ReservedPrefix, in any case, whatever
// follows it ("/_swrx" too: a conservative test for a path as sent, before it is normalised).
func HasReservedPrefix(path []byte) bool {
	return len(path) >= len(ReservedPrefix) && EqualFoldASCII(string(path[:len(ReservedPrefix)]), ReservedPrefix)
}
