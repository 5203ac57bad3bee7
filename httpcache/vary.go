package httpcache

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// IsCredential reports whether the canonical request field name carries credentials:
// Authorization, Proxy-Authorization and Cookie, and any name that says it holds a key, token,
// secret, session, password or auth value (X-Api-Key, X-Auth-Token, X-Session-Id). A variant
// keyed on one of them stores only a digest of the value (VaryValue), and no background refresh
// can ask for it again.
func IsCredential(name string) bool {
	switch name {
	case "Authorization", "Cookie", "Proxy-Authorization":
		return true
	}
	for _, w := range credentialWords {
		if containsFold(name, w) {
			return true
		}
	}
	return false
}

var credentialWords = []string{"key", "token", "secret", "session", "password", "passwd", "auth", "credential"}

// containsFold reports whether s contains the lower-case ASCII word w in any letter case. It
// does not allocate (IsCredential runs on the hit path for every Vary'd field).
func containsFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		j := 0
		for ; j < len(w); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != w[j] {
				break
			}
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// NegotiationFields are the request fields that choose among representations for everyone alike
// (RFC 9110 §12.5): every cacheable fill forwards them, and background refreshes replay them.
// Treat as read-only.
var NegotiationFields = []string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "User-Agent"}

// credentialDigest is the prefix of a hashed credential in a variant's vary values.
const credentialDigest = "sha256:"

// VaryValue returns the normalised value that selects a variant for the request field name
// (canonical) whose field lines are joined in v (RFC 9110 §5.3: several lines are one
// comma-separated list). RFC 9111 §4.1 lets a cache normalise values before matching them, in
// ways that do not change their meaning:
//
//   - Accept-Encoding is reduced to the one coding a variant needs (NormalizeEncoding).
//   - Accept-Language and Accept-Charset, whose language tags and charset names are
//     case-insensitive (RFC 9110 §12.5.4, §12.5.2), and Accept, whose media types and parameter
//     names are (RFC 9110 §8.3.1), lose the optional white space around list members and
//     parameters and the empty members (RFC 9110 §5.6.1; a value with parameters but no member,
//     " ;fr", is only trimmed), and are lower-cased: all of
//     Accept-Language and Accept-Charset, the type/subtype and parameter names of Accept (not
//     parameter values). Members are joined with "," and parameters with ";", as browsers send
//     them, and keep their order: it does not matter to the meaning, but q-values do, and
//     reordering would gain few matches. A value with a quoted-string is only trimmed.
//   - Credentials are replaced by a digest so they are never stored or sent anywhere in clear.
//   - Any other field is trimmed of white space.
//
// It allocates for credentials, and for the three Accept fields only when the value is not
// already in normal form or is longer than 256 bytes.
func VaryValue(name, v string) string {
	switch {
	case name == "Accept-Encoding":
		return NormalizeEncoding(v)
	case name == "Accept-Language", name == "Accept-Charset":
		return normalizeList(v, false)
	case name == "Accept":
		return normalizeList(v, true)
	case IsCredential(name):
		v = trimOWS(v)
		if v == "" {
			return ""
		}
		sum := sha256.Sum256([]byte("swrproxy vary\x00" + name + "\x00" + v))
		return credentialDigest + hex.EncodeToString(sum[:16])
	}
	return trimOWS(v)
}

// normalizeList returns the normal form of an Accept, Accept-Language or Accept-Charset value
// described at VaryValue; media says it is Accept, whose parameter values keep their case.
func normalizeList(v string, media bool) string {
	v = trimOWS(v)
	if strings.IndexByte(v, '"') >= 0 {
		return v // splitting at commas and semicolons could cut a quoted-string
	}
	var arr [256]byte
	b := arr[:0]
	for item := range strings.SplitSeq(v, ",") {
		if trimOWS(item) == "" {
			continue // an empty list member (RFC 9110 §5.6.1)
		}
		if head, _, _ := strings.Cut(item, ";"); trimOWS(head) == "" {
			// Parameters without a member (" ;fr"): the origin sees no member there, so
			// dropping the empty head would make this value equal to one that names "fr".
			return v
		}
		first := true
		for part := range strings.SplitSeq(item, ";") {
			part = trimOWS(part)
			switch {
			case part == "":
				continue
			case first && len(b) > 0:
				b = append(b, ',')
			case !first:
				b = append(b, ';')
			}
			if media && !first {
				name, value, hasValue := strings.Cut(part, "=")
				b = appendLower(b, name)
				if hasValue {
					b = append(b, '=')
					b = append(b, value...)
				}
			} else {
				b = appendLower(b, part)
			}
			first = false
		}
	}
	if string(b) == v {
		return v
	}
	return string(b)
}

// appendLower appends s to b with ASCII letters lower-cased.
func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// KeyedOnCredentials reports whether a variant that varies on names (canonical) is keyed on a
// credential field: its request cannot be replayed by a background refresh.
func KeyedOnCredentials(names []string) bool {
	for _, n := range names {
		if IsCredential(n) {
			return true
		}
	}
	return false
}

// JoinLines joins the lines of one request field as one value (RFC 9110 §5.3; Cookie lines with
// "; ", RFC 6265 §5.4). One line is returned as it is.
func JoinLines(name string, lines []string) string {
	switch len(lines) {
	case 0:
		return ""
	case 1:
		return lines[0]
	}
	if name == "Cookie" {
		return strings.Join(lines, "; ")
	}
	return strings.Join(lines, ", ")
}
