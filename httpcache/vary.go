package httpcache

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// IsCredential reports whether the canonical request field name carries credentials: Authorization,
// Proxy-Authorization and Cookie. A variant keyed on one of them (Vary: Cookie) stores only a
// digest of the value (VaryValue), and no background refresh can ask for it again.
func IsCredential(name string) bool {
	switch name {
	case "Authorization", "Cookie", "Proxy-Authorization":
		return true
	}
	return false
}

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
