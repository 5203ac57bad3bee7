package httpcache

import "strings"

// ForwardingField reports whether a request field name belongs to a family that tells an origin
// (or its framework, its CDN adapter, its CGI gateway) where the request came from: what URL,
// host, scheme, port, method or client address to assume. A client's own values of these must
// never shape an answer shared with others; a proxy sets the ones it stands for.
//
// The name is matched in any letter case, with '_' read as '-' (CGI and WSGI gateways turn
// X_Forwarded_Host into HTTP_X_FORWARDED_HOST, the same as X-Forwarded-Host). The families:
// Forwarded, Via, X-Forwarded*, X-Original-*, X-Rewrite-*, Front-End-*, X-Real-*, X-Http-*
// (X-HTTP-Method-Override, X-HTTP-Host-Override), X-Method-*, X-Host*, X-Proto*, X-Scheme,
// X-Url-Scheme, X-Remote-*, X-Client-*, X-Cluster-*, Https, X-Arr-*, Cf-*, Cloudfront-*,
// Fastly-*, Akamai-*, X-Akamai-*, True-Client-*, names with "Override", names ending in -Ip,
// -Ssl or -Https (X-Forwarded-Ssl, Ssl-Offloaded is caught by its prefix Ssl-).
func ForwardingField(name string) bool {
	var buf [64]byte
	if len(name) > len(buf) {
		return strings.Contains(strings.ToLower(name), "override") // no family name is that long
	}
	b := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		b[i] = c
	}
	n := string(b) // does not escape: compared only
	switch n {
	case "forwarded", "via", "https", "x-scheme", "x-url-scheme", "front-end-https":
		return true
	}
	for _, p := range forwardingPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	for _, s := range []string{"-ip", "-ips", "-ssl", "-https"} {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return strings.Contains(n, "override")
}

var forwardingPrefixes = []string{"x-forwarded", "x-original-", "x-rewrite-", "front-end-", "x-real-",
	"x-http-", "x-method-", "x-host", "x-proto", "x-remote-", "x-client-", "x-cluster-", "x-arr-",
	"cf-", "cloudfront-", "fastly-", "akamai-", "x-akamai-", "true-client-", "ssl-"}
