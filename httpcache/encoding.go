package httpcache

// Content codings swrproxy stores besides a body's identity form (SWR_COMPRESS): which
// responses qualify, which stored coding a request gets (RFC 9110 §12.5.3), and the entity-tag
// of each coding.

import (
	"net/http"
	"strings"
)

// The content codings swrproxy can store (RFC 9110 §8.4.1), as they are spelt in
// Content-Encoding. Identity, no coding, is "".
const (
	CodingBrotli   = "br"
	CodingGzip     = "gzip"
	CodingIdentity = ""
)

// AcceptEncoding holds the weights a request's Accept-Encoding lines give the codings swrproxy
// stores. Feed it every line with Add, then ask Choose. Its zero value is a request without the
// field. It does not allocate.
type AcceptEncoding struct {
	present                 bool
	br, gzip, identity, any qvalue
}

// qvalue is a weight in thousandths (0 to 1000), or unset (not listed). A malformed weight is
// 0: that member is not acceptable, as NormalizeEncoding reads it.
type qvalue int16

const unset qvalue = -1

// Add reads one Accept-Encoding field line (a comma list of codings with optional weights, RFC
// 9110 §12.5.3). A coding listed twice keeps its higher weight; names are case-insensitive, and
// x-gzip counts as gzip (RFC 9110 §8.4.1.3).
func (a *AcceptEncoding) Add(line string) {
	if !a.present {
		a.present = true
		a.br, a.gzip, a.identity, a.any = unset, unset, unset, unset
	}
	for item := range strings.SplitSeq(line, ",") {
		coding, params, _ := strings.Cut(item, ";")
		coding = trimOWS(coding)
		var q *qvalue
		switch {
		case coding == "":
			continue
		case EqualFoldASCII(coding, "br"):
			q = &a.br
		case EqualFoldASCII(coding, "gzip"), EqualFoldASCII(coding, "x-gzip"):
			q = &a.gzip
		case EqualFoldASCII(coding, "identity"):
			q = &a.identity
		case coding == "*":
			q = &a.any
		default:
			continue
		}
		*q = max(*q, weight(params))
	}
}

// Choose returns the coding to send of those stored (identity always, br and gzip when have
// says so): the acceptable one with the highest weight, br before gzip before identity on a
// tie (smallest first). A coding not listed takes the weight of "*" if that is listed, else it
// is not acceptable; identity, not listed and not covered by "*", is acceptable below every
// listed coding (RFC 9110 §12.5.3: acceptable "unless specifically excluded"). When nothing
// stored is acceptable (identity;q=0 or *;q=0 and no stored coding allowed) it returns
// identity anyway, which §12.5.3 allows ("the origin server SHOULD send a response without any
// content coding" rather than 415). Without the field, or with an empty one, identity.
func (a *AcceptEncoding) Choose(haveBr, haveGzip bool) string {
	if !a.present {
		return CodingIdentity
	}
	best, bestQ := CodingIdentity, qvalue(0)
	if haveBr {
		if q := a.of(a.br); q > bestQ {
			best, bestQ = CodingBrotli, q
		}
	}
	if haveGzip {
		if q := a.of(a.gzip); q > bestQ {
			best, bestQ = CodingGzip, q
		}
	}
	idQ := a.identity
	if idQ == unset {
		idQ = a.any // unset too when "*" is absent: below every listed coding
	}
	if idQ > bestQ {
		return CodingIdentity
	}
	return best
}

// of is the weight of a coding listed with q, or the weight of "*".
func (a *AcceptEncoding) of(q qvalue) qvalue {
	if q == unset {
		q = a.any
	}
	return max(q, 0)
}

// weight reads the parameters after a coding: its q (RFC 9110 §12.4.2), 1000 without one. The
// reading is as lenient as positiveQ's: digits with an optional fraction; 1 and above weigh
// 1000; a positive weight below a thousandth weighs 1, so that it stays acceptable; anything
// else weighs 0.
func weight(params string) qvalue {
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		if !EqualFoldASCII(trimOWS(name), "q") {
			continue
		}
		v := trimOWS(value)
		if !positiveQ(v) {
			return 0
		}
		whole, frac, _ := strings.Cut(v, ".")
		if strings.TrimLeft(whole, "0") != "" {
			return 1000
		}
		n := 0
		for i := range 3 {
			n *= 10
			if i < len(frac) {
				n += int(frac[i] - '0')
			}
		}
		return qvalue(max(n, 1))
	}
	return 1000
}

// Encoded reports whether Content-Encoding field lines values name a content coding other than
// identity (a comma list per line, RFC 9110 §8.4).
func Encoded(values []string) bool {
	for _, v := range values {
		for c := range strings.SplitSeq(v, ",") {
			if c = trimOWS(c); c != "" && !EqualFoldASCII(c, "identity") {
				return true
			}
		}
	}
	return false
}

// IdentityCompressible reports whether a response of header h has an identity body (no content
// coding) of a compressible type: one that a proxy may send coded, so that its replies say they
// vary on Accept-Encoding.
func IdentityCompressible(h http.Header) bool {
	return !Encoded(h.Values("Content-Encoding")) && Compressible(ContentType(h.Values("Content-Type")))
}

// ContentType is the Content-Type a response with these field lines is sent with: the last one
// (fasthttp, like most senders, keeps the last when given several), "" for none. Whether a
// response is compressible is judged on it, so that a reply that may be gzipped on the way
// (by nginx, after its type) is the one that says it varies on Accept-Encoding.
func ContentType(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[len(values)-1]
}

// Compressible reports whether a response of the Content-Type value ct is worth compressing:
// text (but not text/event-stream, a stream), JSON, JavaScript, CSS, XML and SVG, including
// the structured suffixes +json and +xml (RFC 6839). Case-insensitive; parameters ignored.
func Compressible(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = trimOWS(mt)
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || sub == "" {
		return false
	}
	switch {
	case EqualFoldASCII(typ, "text"):
		return !EqualFoldASCII(sub, "event-stream")
	case hasSuffixFold(sub, "+json"), hasSuffixFold(sub, "+xml"):
		return true
	case !EqualFoldASCII(typ, "application"):
		return false
	}
	for _, s := range []string{"json", "javascript", "x-javascript", "ecmascript", "xml", "x-ndjson"} {
		if EqualFoldASCII(sub, s) {
			return true
		}
	}
	return false
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) > len(suffix) && EqualFoldASCII(s[len(s)-len(suffix):], suffix)
}

// EncodingTag returns the entity-tag of a stored coding of the representation whose tag is tag
// (a well-formed one, strong or weak): the opaque part with ":swr-" and the coding appended, the
// W/ kept ("abc" → "abc:swr-gzip", W/"abc" → W/"abc:swr-br"), a suffix of swrproxy's own: the
// "-gzip" an origin such as Apache's mod_deflate appends for its own gzip output must never also
// name swrproxy's bytes. A coded representation is another representation (RFC 9110 §8.8.3: a
// strong tag names one sequence of bytes), so it needs a tag of its own, derived so that every
// instance computes the same one.
func EncodingTag(tag, coding string) string {
	if coding == CodingIdentity || len(tag) < 2 || tag[len(tag)-1] != '"' {
		return tag
	}
	return tag[:len(tag)-1] + ":swr-" + coding + `"`
}
