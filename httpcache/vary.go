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
// comma-separated list): Accept-Encoding reduced to the one coding a variant needs
// (NormalizeEncoding), credentials replaced by a digest so they are never stored or sent
// anywhere in clear, and the rest trimmed of white space. It allocates only for credentials.
func VaryValue(name, v string) string {
	switch {
	case name == "Accept-Encoding":
		return NormalizeEncoding(v)
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
