package proxy

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// appendKey appends the cache key of the request to b (see httpcache.Key). With KeyHost the host
// is the validated, normalised Host (Guard refused the request if it is not valid).
func (h *Handler) appendKey(b []byte, c *fiber.Ctx, uri []byte) []byte {
	if h.KeyHost {
		if kb, ok := httpcache.AppendHost(b, c.Request().Header.Host(), defaultPort(c)); ok && len(kb) > len(b) {
			b = append(kb, httpcache.KeySeparator)
		}
	}
	return append(b, uri...)
}

// keyHost is the host part of the request's cache key: "" unless KeyHost.
func (h *Handler) keyHost(c *fiber.Ctx) string {
	if !h.KeyHost {
		return ""
	}
	b, _ := httpcache.AppendHost(nil, c.Request().Header.Host(), defaultPort(c))
	return string(b)
}

// defaultPort is the port a Host field may leave out on this connection.
func defaultPort(c *fiber.Ctx) string {
	if c.Context().IsTLS() {
		return "443"
	}
	return "80"
}

// requestValue is the normalised value of a request field for Vary matching (httpcache.VaryValue
// of all its lines joined). The result may alias fasthttp's buffers: compare it, do not keep it.
// It allocates only for a field sent on several lines, or a credential.
func requestValue(c *fiber.Ctx, name string) string {
	vs := c.Request().Header.PeekAll(name)
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return httpcache.VaryValue(name, b2s(vs[0]))
	}
	lines := make([]string, len(vs))
	for i, v := range vs {
		lines[i] = string(v)
	}
	return httpcache.VaryValue(name, httpcache.JoinLines(name, lines))
}

// newRequest copies what a fill needs out of the client's request: nothing it returns aliases
// fasthttp's buffers, so it may outlive the handler.
func (h *Handler) newRequest(c *fiber.Ctx, stale *tiers.Entry, gen uint64) *tiers.Request {
	uri := string(c.Request().Header.RequestURI())
	hdr, raw := h.forwardHeader(c, true)
	return &tiers.Request{
		Key:           httpcache.Key(h.keyHost(c), uri),
		URI:           uri,
		Header:        hdr,
		Stale:         stale,
		Gen:           gen,
		Authorization: hdr.Get("Authorization") != "",
		Cookie:        hdr.Get("Cookie") != "",
		// The same normalisation as requestValue, on a copy of the client's own fields, so that
		// the variant a fill stores is the one the lookup of the same request selects.
		Value: func(name string) string { return httpcache.VaryValue(name, httpcache.JoinLines(name, raw[name])) },
	}
}

// forwardingField reports whether a canonical request field name belongs to a family that tells
// an origin (or its framework) where the request came from, what URL, host, scheme, port, method
// or client address to assume: X-Forwarded-*, X-Original-*, X-Rewrite-*, Forwarded, Front-End-*,
// X-Real-*, X-Http-* (X-HTTP-Method-Override, X-HTTP-Host-Override), X-Method-*, X-Host*,
// X-Scheme, X-Url-Scheme, Via, anything with "Override" in its name, and client addresses
// (*-Ip: True-Client-IP, X-Client-IP, CF-Connecting-IP). The client's own values of these never
// reach the origin on a cacheable fill (the answer is shared by everyone with the key), nor from
// a peer that is not a trusted proxy; swrproxy sets the ones it stands for (forwardHeader).
func forwardingField(name string) bool {
	for _, p := range []string{"X-Forwarded-", "X-Original-", "X-Rewrite-", "Forwarded", "Front-End-",
		"X-Real-", "X-Http-", "X-Method-", "X-Host"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	switch name {
	case "X-Scheme", "X-Url-Scheme", "Via":
		return true
	}
	return strings.Contains(name, "Override") || strings.HasSuffix(name, "-Ip")
}

// trusted reports whether the client connection comes from one of SWR_TRUSTED_PROXIES, whose
// X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host and X-Real-IP swrproxy believes.
func (h *Handler) trusted(c *fiber.Ctx) bool {
	if len(h.TrustedProxies) == 0 {
		return false
	}
	addr, ok := netip.AddrFromSlice(c.Context().RemoteIP())
	if !ok {
		return false
	}
	addr = addr.Unmap()
	for _, p := range h.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// conditional are the request fields a cacheable fill never forwards: the cache wants the whole
// representation (and validates it with its own validators).
var conditional = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"}

// forwardHeader copies the client's end-to-end request fields for the origin and sets the
// forwarding fields; raw is a copy of the client's fields as they came (minus the fields its
// Connection names, which the origin never sees, so no variant may be keyed on them).
//
// For a cacheable GET (fill), whose answer everyone with the key shares, it forwards only what
// is the same for all of them or part of the key: conditional and Range fields are dropped,
// every field goes as one line (the joined value the variant is keyed on, RFC 9110 §5.3),
// Accept-Encoding is normalised (the stored variant must suit every client of that variant),
// every forwardingField is dropped, and swrproxy sets X-Forwarded-For, X-Forwarded-Proto,
// X-Real-IP (from a trusted proxy) and, only when SWR_KEY_HOST puts the host in the key,
// X-Forwarded-Host.
//
// For a pass-through, the client's fields go as they are, except that the forwarding fields of a
// peer that is not a trusted proxy are replaced by swrproxy's own.
func (h *Handler) forwardHeader(c *fiber.Ctx, fill bool) (hdr, raw http.Header) {
	hdr, raw = make(http.Header, 16), make(http.Header, 16)
	rh := &c.Request().Header
	trusted := h.trusted(c)
	var connection []string
	rh.VisitAll(func(k, v []byte) {
		name := http.CanonicalHeaderKey(string(k))
		value := string(v)
		raw[name] = append(raw[name], value)
		switch {
		case name == "Connection":
			connection = append(connection, value)
			return
		case name == "Host", name == "Content-Length", upstream.IsHopByHop(name):
			return
		case fill && isConditional(name):
			return
		case forwardingField(name) && (fill || !trusted):
			return
		}
		hdr[name] = append(hdr[name], value)
	})
	for _, v := range connection {
		for n := range strings.SplitSeq(v, ",") {
			if n = http.CanonicalHeaderKey(strings.TrimSpace(n)); n != "" {
				hdr.Del(n)
				delete(raw, n)
			}
		}
	}
	if fill {
		for name, vs := range hdr {
			if len(vs) > 1 || strings.TrimSpace(vs[0]) != vs[0] {
				hdr[name] = []string{strings.Trim(httpcache.JoinLines(name, vs), " \t")}
			}
		}
		hdr.Del("Accept-Encoding")
		if enc := httpcache.VaryValue("Accept-Encoding", httpcache.JoinLines("Accept-Encoding", raw["Accept-Encoding"])); enc != "" {
			hdr.Set("Accept-Encoding", enc)
		}
	}

	// The forwarding fields swrproxy stands for. From a trusted proxy (nginx), its values are
	// believed; from anyone else, swrproxy states what it knows itself.
	peer := c.Context().RemoteIP().String()
	xff := peer
	if prior := httpcache.JoinLines("X-Forwarded-For", raw["X-Forwarded-For"]); trusted && prior != "" {
		xff = prior + ", " + peer
	}
	hdr.Set("X-Forwarded-For", xff)
	proto := "http"
	if c.Context().IsTLS() {
		proto = "https"
	}
	if p := strings.ToLower(strings.TrimSpace(string(rh.Peek("X-Forwarded-Proto")))); trusted && (p == "http" || p == "https") {
		proto = p
	}
	hdr.Set("X-Forwarded-Proto", proto)
	if real := raw.Get("X-Real-Ip"); trusted && real != "" {
		hdr.Set("X-Real-Ip", real)
	}
	switch kh := h.keyHost(c); {
	case fill && kh != "":
		hdr.Set("X-Forwarded-Host", kh)
	case fill:
		hdr.Del("X-Forwarded-Host") // the host is not in the key: it must not shape the answer
	case !trusted || hdr.Get("X-Forwarded-Host") == "":
		hdr.Set("X-Forwarded-Host", string(rh.Host()))
	}
	return hdr, raw
}

func isConditional(name string) bool {
	for _, n := range conditional {
		if n == name {
			return true
		}
	}
	return false
}
