package httpcache

// The syntax of fields that every part of the package reads (RFC 9110 §5): tokens, optional
// whitespace, field values, ASCII case folding; and the fields a message's framing and its
// connection are made of.

import "strings"

// EqualFoldASCII reports whether s equals lower (all lower case) in ASCII case folding.
// Unlike strings.EqualFold it does not fold non-ASCII letters such as 'ſ' (U+017F) to 's'.
func EqualFoldASCII(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// trimOWS removes optional whitespace (SP, HTAB; RFC 9110 §5.6.3) from both ends of s.
func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// IsToken reports whether s is an RFC 9110 §5.6.2 token (a field name, a directive name).
func IsToken(s string) bool { return isToken(s) }

// IsFieldValue reports whether s may be sent as a field value (RFC 9110 §5.5): no control
// character other than tab, so an edit cannot inject a field line.
func IsFieldValue(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ConnectionFields are the fields that belong to one connection, not to the message (RFC 9110
// §7.6.1), in canonical form. FramingField and the policy's key checks refuse them;
// upstream.RemoveHopByHop removes them, and the proxy authentication fields, from what goes to
// and comes from the origin (from its own copy of the list, which its tests keep equal to this
// one: upstream imports none of the caching parts). Do not modify.
var ConnectionFields = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// FramingField reports whether a field (any letter case) decides where a message ends or where
// it goes, or belongs to one connection: a policy that edited one could desynchronise the proxy
// and the origin.
func FramingField(name string) bool {
	if strings.EqualFold(name, "Content-Length") || strings.EqualFold(name, "Host") {
		return true
	}
	for _, f := range ConnectionFields {
		if strings.EqualFold(name, f) {
			return true
		}
	}
	return false
}

// isToken reports whether s is a non-empty token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
