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

// Content-codings NormalizeEncoding returns.
const (
	encodingBrotli   = "br"
	encodingGzip     = "gzip"
	encodingIdentity = ""
)

// NormalizeEncoding maps an Accept-Encoding request value to the one content-coding a variant key needs:
// "br" if br is acceptable (q>0), else "gzip" if gzip or x-gzip or "*" is acceptable, else "" (identity).
// Case-insensitive, q-values honoured ("gzip;q=0" → not acceptable). Must not allocate. Returns one of the three constants.
//
// br is chosen whenever acceptable, whatever the relative q-values. "*" stands for gzip only
// when gzip and x-gzip are not listed, so "gzip;q=0, *" gives "". A malformed q-value
// ("gzip;q=high") makes that coding unacceptable.
func NormalizeEncoding(s string) string {
	var br, gzip, gzipListed, star bool
	for item := range strings.SplitSeq(s, ",") {
		coding, params, _ := strings.Cut(item, ";")
		coding = trimOWS(coding)
		switch {
		case EqualFoldASCII(coding, "br"):
			br = br || acceptable(params)
		case EqualFoldASCII(coding, "gzip"), EqualFoldASCII(coding, "x-gzip"):
			gzipListed = true
			gzip = gzip || acceptable(params)
		case coding == "*":
			star = star || acceptable(params)
		}
	}
	switch {
	case br:
		return encodingBrotli
	case gzip, star && !gzipListed:
		return encodingGzip
	}
	return encodingIdentity
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
