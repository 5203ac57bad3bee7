package httpcache

import (
	"net/textproto"
	"slices"
	"strings"
)

// VaryNames returns the canonical header names listed by the Vary field values (each value may be a comma list),
// deduplicated, sorted, and star reports whether "*" appeared.
//
// Elements that are not field names (tokens, RFC 9110 §5.1) are skipped. names is nil when none is listed.
func VaryNames(values []string) (names []string, star bool) {
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			switch item = trimOWS(item); {
			case item == "*":
				star = true
			case isToken(item):
				names = append(names, textproto.CanonicalMIMEHeaderKey(item))
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), star
}

// NormalizeEncoding maps an Accept-Encoding request value to the one content coding a variant
// key needs, and a fill without SWR_COMPRESS forwards: the coding of br, gzip and identity the
// value accepts best, as AcceptEncoding.Choose picks the stored coding a reply gets (q-values
// honoured, br before gzip before identity on a tie), so a client gets the same coding whether
// swrproxy or the origin compresses. Returns CodingBrotli, CodingGzip or CodingIdentity; does
// not allocate.
func NormalizeEncoding(s string) string {
	var a AcceptEncoding
	a.Add(s)
	return a.Choose(true, true)
}

// acceptable reports whether the parameters after a content-coding leave its weight above 0
// (RFC 9110 §12.4.2). No q parameter means q=1.
func acceptable(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if EqualFoldASCII(trimOWS(name), "q") {
			return positiveQ(trimOWS(value))
		}
	}
	return true
}

// positiveQ reports whether v is a well-formed qvalue above 0. It accepts any digits with an
// optional fraction ("0.5", "1", "0.0001"), more than RFC 9110 §12.4.2 allows, and rejects the rest.
func positiveQ(v string) bool {
	if v == "" || v[0] < '0' || v[0] > '9' {
		return false
	}
	positive, dot := false, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '.' && !dot:
			dot = true
		case '1' <= c && c <= '9':
			positive = true
		case c != '0':
			return false
		}
	}
	return positive
}
