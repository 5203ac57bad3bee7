package proxy

// Choosing among an entry's stored codings (SWR_COMPRESS) on the hit path.

import (
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
)

// selectEncoding returns the stored coding of e that the request accepts best (RFC 9110
// §12.5.3, httpcache.AcceptEncoding: every Accept-Encoding line counts), or nil for the identity
// form: always for a ranged request (ranged: a GET with Range on a stored 200), whose ranges are
// cut from the identity form, so that its positions, its ETag and If-Range mean one sequence of
// bytes whatever the client accepts. It does not allocate.
func selectEncoding(req *fasthttp.RequestHeader, e *tiers.Entry, ranged bool) *tiers.Encoding {
	if len(e.Encodings) == 0 || ranged {
		return nil
	}
	lines := req.PeekAll(fiber.HeaderAcceptEncoding)
	if len(lines) == 0 {
		// No field: any coding is acceptable (RFC 9110 §12.5.3), yet the client may not decode
		// it; identity, as Choose picks too, without reading the stored codings (with many
		// keys, a load from memory on each hit).
		return nil
	}
	var a httpcache.AcceptEncoding
	for _, v := range lines {
		a.Add(b2s(v))
	}
	coding := a.Choose(e.Encoded(httpcache.CodingBrotli) != nil, e.Encoded(httpcache.CodingGzip) != nil)
	if coding == httpcache.CodingIdentity {
		return nil
	}
	return e.Encoded(coding)
}
