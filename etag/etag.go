package etag

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// NotModifiedHeaders lists, in canonical form, the header fields a 304 response carries when the 200
// would have carried them: the ones RFC 9110 §15.4.5 requires, plus Last-Modified, which is harmless
// and lets clients keep validating with If-Modified-Since. Callers must not modify it.
var NotModifiedHeaders = []string{"Cache-Control", "Content-Location", "Date", "ETag", "Expires", "Last-Modified", "Vary"}

// Parse parses an If-None-Match or If-Match field value (RFC 9110 §8.8.3, §13.1.1, §13.1.2): either "*"
// (star is true and tags nil) or a comma-separated list of entity-tags such as `"abc"`, `W/"abc"`
// and `""`, with optional whitespace around the commas. Empty list elements (`"a", , "b"`) are
// skipped as RFC 9110 §5.6.1 asks, so an empty or blank value is an empty list: nil, false, true.
//
// The tags are substrings of s, exactly as written, W/ prefix included; clone s first if its
// buffer is reused. ok is false, with nil tags, on any syntax error: an unquoted tag, a missing
// comma between tags, a missing closing quote, or a byte inside the quotes that is not etagc
// (%x21 / %x23-7E / %x80-FF), such as a control character, a space or a quote.
func Parse(s string) (tags []string, star bool, ok bool) {
	if trimOWS(s) == "*" {
		return nil, true, true
	}
	for {
		tag, rest, ok := next(s)
		if !ok {
			return nil, false, false
		}
		if tag == "" {
			return tags, false, true
		}
		tags = append(tags, tag)
		s = rest
	}
}

// NoneMatch reports whether a GET or HEAD request whose If-None-Match field value is inm should get
// 304 Not Modified for a representation whose entity-tag is etag (RFC 9110 §13.1.2): inm is "*",
// or one of its tags weakly matches etag, i.e. their opaque-tags are equal once any W/ prefix is
// dropped on both sides (RFC 9110 §8.8.3.2). etag should be well-formed, as Normalize and Compute
// return it.
//
// NoneMatch is false when etag is empty or inm is empty or malformed anywhere, even after a
// matching tag: the client then gets the full 200. It agrees with Parse and does not allocate.
func NoneMatch(inm, etag string) bool {
	if etag == "" {
		return false
	}
	if trimOWS(inm) == "*" {
		return true
	}
	want := opaque(etag)
	match := false
	for {
		tag, rest, ok := next(inm)
		if !ok {
			return false
		}
		if tag == "" {
			return match
		}
		// Keep scanning after a match: a malformed list never yields 304.
		match = match || opaque(tag) == want
		inm = rest
	}
}

// NotModifiedSince reports whether a representation last modified at lastModified has not been
// modified since ims, the If-Modified-Since field value (RFC 9110 §13.1.3), that is whether
// lastModified <= ims. Both are HTTP-dates in any of the three formats http.ParseTime accepts;
// NotModifiedSince is false when either is empty or does not parse, so the client gets the full 200.
func NotModifiedSince(ims, lastModified string) bool {
	if ims == "" || lastModified == "" {
		return false // the common case on the hit path: no allocation for a parse error
	}
	since, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	modified, err := http.ParseTime(lastModified)
	if err != nil {
		return false
	}
	return !modified.After(since)
}

// NotModified reports whether a GET or HEAD request gets 304 Not Modified, given its If-None-Match
// (inm) and If-Modified-Since (ims) field values and the stored ETag and Last-Modified values.
// RFC 9110 §13.2.2 precedence applies: when inm is non-empty only NoneMatch decides and ims is
// ignored; otherwise NotModifiedSince does.
func NotModified(inm, ims, etag, lastModified string) bool {
	if inm != "" {
		return NoneMatch(inm, etag)
	}
	return NotModifiedSince(ims, lastModified)
}

// Compute returns a strong entity-tag for body: a double quote, the unpadded base64url encoding of
// the first 16 bytes of SHA-256(body) (22 characters), and a double quote; 24 bytes in all.
// It is deterministic, so every proxy instance computes the same tag for the same bytes.
func Compute(body []byte) string {
	sum := sha256.Sum256(body)
	var b [24]byte
	b[0] = '"'
	base64.RawURLEncoding.Encode(b[1:23], sum[:16])
	b[23] = '"'
	return string(b[:])
}

// Normalize returns the origin's ETag field value s as a well-formed entity-tag, for storing and
// sending. Surrounding spaces and tabs are trimmed; a well-formed `"x"` or `W/"x"` is returned
// unchanged; a non-empty unquoted value made only of etagc bytes, which some origins send and nginx
// would drop, is quoted: `abc` becomes `"abc"` and `W/abc` becomes `W/"abc"`. Anything else (empty,
// a stray quote, a space or control character, several tags) gives ok false, and the caller should
// Compute a tag instead.
func Normalize(s string) (tag string, ok bool) {
	s = trimOWS(s)
	if n := tagLen(s); n > 0 && n == len(s) {
		return s, true
	}
	prefix, bare := "", s
	if strings.HasPrefix(s, "W/") {
		prefix, bare = "W/", s[2:]
	}
	if bare == "" {
		return "", false
	}
	for i := 0; i < len(bare); i++ {
		if !isEtagc(bare[i]) {
			return "", false
		}
	}
	return prefix + `"` + bare + `"`, true
}

// next returns the first entity-tag of the list s, skipping empty elements, and the rest of s after
// that tag's trailing comma. An empty tag with ok true means the list has ended; ok is false on a
// syntax error. It does not allocate.
func next(s string) (tag, rest string, ok bool) {
	for {
		s = trimLeftOWS(s)
		if s == "" {
			return "", "", true
		}
		if s[0] != ',' {
			break
		}
		s = s[1:]
	}
	n := tagLen(s)
	if n < 0 {
		return "", "", false
	}
	tag, s = s[:n], trimLeftOWS(s[n:])
	switch {
	case s == "":
		return tag, "", true
	case s[0] == ',':
		return tag, s[1:], true
	}
	return "", "", false // anything but a comma after a tag
}

// tagLen returns the length of the entity-tag at the start of s (RFC 9110 §8.8.3:
// [ "W/" ] DQUOTE *etagc DQUOTE), or -1 if s does not start with one.
func tagLen(s string) int {
	i := 0
	if strings.HasPrefix(s, "W/") { // case-sensitive: w/"x" is not weak, it is malformed
		i = 2
	}
	if i >= len(s) || s[i] != '"' {
		return -1
	}
	for i++; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i + 1
		case !isEtagc(c):
			return -1
		}
	}
	return -1 // no closing quote
}

// isEtagc reports whether c may appear inside an opaque-tag: %x21 / %x23-7E / obs-text.
func isEtagc(c byte) bool {
	return c == 0x21 || 0x23 <= c && c <= 0x7e || c >= 0x80
}

// opaque returns tag without its weak indicator, for weak comparison (RFC 9110 §8.8.3.2).
func opaque(tag string) string {
	return strings.TrimPrefix(tag, "W/")
}

// trimOWS trims optional whitespace (SP and HTAB, RFC 9110 §5.6.3) from both ends of s.
func trimOWS(s string) string {
	s = trimLeftOWS(s)
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// trimLeftOWS trims optional whitespace from the start of s.
func trimLeftOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	return s
}
