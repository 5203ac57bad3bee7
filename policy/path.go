package policy

import (
	"bytes"
	"net/url"
)

// AmbiguousPath reports whether a request's raw path (as the client wrote it, before "?") is one
// that servers resolve in different ways, so that no rule can be matched to it safely: one with
// a dot segment ("/./", "/../", or one at the end), an empty segment ("//"), a backslash, a ";"
// (a path parameter, which Tomcat, Spring and others cut off: "/account;.css" is their
// "/account"), a percent-encoded "/", "\", ".", ";", "?", "#", "%" (double encoding) or control
// byte, or a "%" that does not start an escape. Rules match the
// decoded path (as fasthttp's URI().Path() and DecodePath give it), the key holds the raw one
// and the origin sees the raw one: for such a path the rule that matched ("/a/..%2Fb.css" as
// "/b.css") need not be the route the origin takes ("/a/"), which would let a client store one
// route's answer under another route's rule (web cache deception). The proxy passes such a
// request through uncached while a policy is in force. It does not allocate.
func AmbiguousPath(raw []byte) bool {
	if bytes.IndexByte(raw, '\\') >= 0 || bytes.IndexByte(raw, ';') >= 0 || bytes.Contains(raw, []byte("//")) {
		return true
	}
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return true
			}
			switch c := unhex(raw[i+1])<<4 | unhex(raw[i+2]); {
			case c == '/', c == '\\', c == '.', c == ';', c == '?', c == '#', c == '%', c < 0x20, c == 0x7f:
				return true
			}
		case '.':
			// a segment that is "." or "..": preceded by "/" and followed by "/" or the end
			if i == 0 || raw[i-1] != '/' {
				continue
			}
			j := i + 1
			if j < len(raw) && raw[j] == '.' {
				j++
			}
			if j == len(raw) || raw[j] == '/' {
				return true
			}
		}
	}
	return false
}

// DecodePath returns the path rules match for a raw path: the percent-decoded path, as fasthttp's
// URI().Path() gives it on the request path; ok is false when the path is ambiguous
// (AmbiguousPath) and no rule may be matched to it.
func DecodePath(raw string) (path string, ok bool) {
	if AmbiguousPath([]byte(raw)) {
		return raw, false
	}
	dec, err := url.PathUnescape(raw)
	if err != nil {
		return raw, false
	}
	return dec, true
}
