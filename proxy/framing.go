package proxy

import (
	"bytes"

	"github.com/swrproxy/swrproxy/httpcache"
)

// framing is what one pass over a request's raw header block tells about how the message is
// delimited: the fields where HTTP implementations disagree, and that request smuggling plays on.
// fasthttp parses them leniently (the last Content-Length or Host wins, any Transfer-Encoding
// but "identity" counts as chunked), so swrproxy refuses every request that two parsers could
// read two ways before anything reads its body.
type framing struct {
	hosts, lengths, encodings int
	// chunkedOnly: exactly one Transfer-Encoding line, and it is "chunked" (any case, OWS trimmed).
	chunkedOnly bool
	// chunkedLast: the last transfer coding listed is chunked (RFC 9112 §6.3: else the length of a
	// request body cannot be determined).
	chunkedLast bool
	// fold: a line starts with white space (obsolete line folding, RFC 9112 §5.2).
	fold bool
	// bareCR: a CR not followed by LF (RFC 9112 §2.2: a recipient of a bare CR must reject or
	// replace it; parsers disagree about it).
	bareCR bool
	// badName: a field name that is not a token (RFC 9110 §5.1), or empty; badValue: a value
	// with a control character other than HTAB (RFC 9110 §5.5). Parsers differ on both.
	badName, badValue bool
}

// scanFraming reads the raw header block of a request (the field lines after the request line,
// as fasthttp's RawHeaders returns them: CRLF or bare LF line ends, ending with an empty line).
// It does not allocate and never panics, whatever the bytes.
func scanFraming(raw []byte) framing {
	var f framing
	if bytes.IndexByte(raw, '\r') >= 0 {
		for i := 0; i < len(raw); i++ {
			if raw[i] == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
				f.bareCR = true
				break
			}
		}
	}
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			f.fold = true
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue // fasthttp refuses such a line itself
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !f.badName && !httpcache.IsToken(b2s(name)) {
			f.badName = true
		}
		if !f.badValue && hasCTL(value) {
			f.badValue = true
		}
		switch {
		case httpcache.EqualFoldASCII(b2s(name), "host"):
			f.hosts++
		case httpcache.EqualFoldASCII(b2s(name), "content-length"):
			f.lengths++
		case httpcache.EqualFoldASCII(b2s(name), "transfer-encoding"):
			f.encodings++
			f.chunkedOnly = f.encodings == 1 && httpcache.EqualFoldASCII(b2s(value), "chunked")
			last := value
			if i := bytes.LastIndexByte(value, ','); i >= 0 {
				last = trimOWS(value[i+1:])
			}
			f.chunkedLast = httpcache.EqualFoldASCII(b2s(last), "chunked")
		}
	}
	return f
}

// hasCTL reports whether b holds a control character other than HTAB (obs-text, 0x80 and up,
// is allowed in values).
func hasCTL(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
