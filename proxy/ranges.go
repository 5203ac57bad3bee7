package proxy

// Range requests answered from a stored body (RFC 9110 §14). Only a stored complete 200 is
// ranged, only for GET (§14.2: "GET is the only method for which range handling is defined"; a
// HEAD gets the 200's header), and only a single range: several ranges get the whole 200, which
// §14.2 allows (a server may ignore Range), instead of a multipart/byteranges body. A Range that
// is not a valid bytes ranges-specifier is ignored the same way. A Range on a miss is not
// forwarded: the fill fetches the whole object, so that it can be stored, and the range is cut
// from it (an unstorable answer is streamed whole; its URL's later requests pass through with
// their Range, and the origin answers them).

import (
	"math"
	"strings"

	"github.com/swrproxy/swrproxy/etag"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
)

// rangeAnswer is how a request's Range is answered.
type rangeAnswer int

const (
	rangeWhole         rangeAnswer = iota // no range: the whole 200
	rangePartial                          // 206 with one byte range
	rangeUnsatisfiable                    // 416 with Content-Range: bytes */size
)

// maxRanges bounds the range-specs parseRange reads: a longer list is ignored (whole 200)
// without being parsed further.
const maxRanges = 16

// parseRange reads a Range field value (RFC 9110 §14.1.1, §14.2) for a representation of size
// bytes. For rangePartial, first and last are the byte positions (inclusive) within it. It is
// strict: the unit is "bytes" (any case), no white space around "=" or inside a range-spec, OWS
// and empty elements around commas (§5.6.1), positions are digits only; numbers too large for an
// int64 saturate (a first-pos beyond any body is unsatisfiable, a last-pos or suffix-length
// beyond the body means to its end). Anything else, more than one range-spec, or an empty body is
// rangeWhole.
func parseRange(v string, size int64) (first, last int64, answer rangeAnswer) {
	unit, set, ok := strings.Cut(v, "=")
	if !ok || !httpcache.EqualFoldASCII(unit, "bytes") || size <= 0 {
		return 0, 0, rangeWhole
	}
	n := 0
	var spec string
	for set != "" {
		var elem string
		elem, set, _ = strings.Cut(set, ",")
		if elem = strings.Trim(elem, " \t"); elem == "" {
			continue
		}
		if n++; n > maxRanges {
			return 0, 0, rangeWhole
		}
		if _, _, _, ok := parseSpec(elem); !ok {
			return 0, 0, rangeWhole // §14.1.1: one invalid range-spec makes the whole set invalid
		}
		spec = elem
	}
	if n != 1 {
		return 0, 0, rangeWhole
	}
	f, l, suffix, _ := parseSpec(spec)
	switch {
	case suffix && l == 0, !suffix && f >= size: // §14.1.2
		return 0, 0, rangeUnsatisfiable
	case suffix:
		return size - min(l, size), size - 1, rangePartial
	}
	return f, min(l, size-1), rangePartial
}

// parseSpec reads one range-spec: "first-last" or "first-" (an open last is math.MaxInt64), or
// "-suffix" (suffix true, the length in last). ok is false when it is not one, or last < first.
func parseSpec(s string) (first, last int64, suffix, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false, false
	}
	if a == "" {
		l, ok := parseDigits(b)
		return 0, l, true, ok
	}
	f, ok := parseDigits(a)
	if !ok {
		return 0, 0, false, false
	}
	if b == "" {
		return f, math.MaxInt64, false, true
	}
	l, ok := parseDigits(b)
	return f, l, false, ok && l >= f
}

// parseDigits reads 1*DIGIT, saturating at math.MaxInt64.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-int64(c-'0'))/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// ifRangeHolds reports whether a request's If-Range value (RFC 9110 §13.1.5) lets its Range
// apply to e: "" (no If-Range), an entity-tag strongly equal to e's (a weak tag on either side
// never matches), or an HTTP-date equal to e's Last-Modified. Anything else means the client's
// copy is not e: it gets the whole 200. A Last-Modified that is not a strong validator (its
// response's Date less than a second later) never matches.
func ifRangeHolds(v string, e *tiers.Entry) bool {
	v = strings.Trim(v, " \t")
	lm := e.LastModified()
	switch {
	case v == "":
		return true
	case strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "W/"):
		tags, star, ok := etag.Parse(v)
		return ok && !star && len(tags) == 1 && !strings.HasPrefix(tags[0], "W/") && tags[0] == e.ETag
	case lm == "":
		return false
	}
	// RFC 9110 §13.1.5: the date must exactly match the stored Last-Modified, and that must be
	// a strong validator (§8.8.2.2: at least a second older than the response's Date).
	return v == lm && httpcache.StrongLastModified(lm, e.Field("Date"))
}
