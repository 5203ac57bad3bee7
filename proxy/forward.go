package proxy

import (
	"bytes"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// keyHost is the host part of the request's cache key: "" unless KeyHost.
func (h *Handler) keyHost(c *fiber.Ctx) string {
	if !h.KeyHost {
		return ""
	}
	return string(httpcache.AppendKeyHost(nil, c.Request().Header.Host(), c.Context().IsTLS()))
}

// requestValue is the normalised value of a request field for Vary matching: for a field of the
// forwarding families, what a fill forwards (forwardedValue: swrproxy's own value, or none);
// for any other, httpcache.VaryValue of the client's lines joined. The result may alias
// fasthttp's buffers: compare it, do not keep it. It allocates only for a field sent on several
// lines, a credential, or a forwarding field.
func (h *Handler) requestValue(c *fiber.Ctx, name string) string {
	if httpcache.ForwardingField(name) {
		return httpcache.VaryValue(name, h.forwardedValue(c, name, true))
	}
	if inConnection(c, name) {
		return "" // hop-by-hop for this request: never forwarded, so absent for the origin
	}
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

// inConnection reports whether the request's Connection field names the field name (which makes
// it hop-by-hop, RFC 9110 §7.6.1: forwardHeader drops it). It does not allocate.
func inConnection(c *fiber.Ctx, name string) bool {
	for _, v := range c.Request().Header.PeekAll(fiber.HeaderConnection) {
		if upstream.ListsName(b2s(v), name) {
			return true
		}
	}
	return false
}

// newRequest copies what a fill needs out of the client's request: nothing it returns aliases
// fasthttp's buffers, so it may outlive the handler. known is what the tiers hold for the key
// (nil on a first miss): the fields its variants vary on are forwarded too.
//
// The policy's rule (rt) builds the key and the target asked for, and edits the fields sent:
// its request actions, then the Cookie is reduced to the keyed cookies, as the key records them,
// and the kept ones (policy.Rule.FillCookies).
func (h *Handler) newRequest(c *fiber.Ctx, rt route, known *tiers.Object, stale *tiers.Entry, gen uint64) *fill.Request {
	key, uri := h.key(c, rt)
	hdr, raw := h.forwardHeader(c, true, append(varyNames(known), rt.keyed()...))
	rt.editRequest(hdr)
	cookie := rt.rule.FillCookies(hdr, func(name string) []byte { return keyedCookie(c, name) })
	field := func(name string) string { return strings.Trim(httpcache.JoinLines(name, raw[name]), " \t") }
	return &fill.Request{
		Key:           key,
		URI:           uri,
		Header:        hdr,
		Stale:         stale,
		Gen:           gen,
		Authorization: hdr.Get("Authorization") != "",
		Cookie:        cookie,
		Rule:          rt.rule,
		Matched:       true,
		Replay:        rt.replay(),
		Policy:        rt.policy,
		// The same normalisation as requestValue, on a copy of the client's own fields, so that
		// the variant a fill stores is the one the lookup of the same request selects.
		Value: func(name string) string {
			if httpcache.ForwardingField(name) {
				return httpcache.VaryValue(name, hdr.Get(name))
			}
			return httpcache.VaryValue(name, httpcache.JoinLines(name, raw[name]))
		},
		Field: field,
	}
}

// varyNames returns the fields the stored variants of o vary on.
func varyNames(o *tiers.Object) []string {
	if o == nil {
		return nil
	}
	var names []string
	for _, e := range o.Variants {
		for _, n := range e.Vary {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
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

// fillFields are the request fields every cacheable fill forwards (besides the ones the key's
// variants vary on, and swrproxy's own forwarding fields): content negotiation, the user agent,
// and the credentials, whose responses httpcache.Decide keeps from being shared unless the
// origin allows it. Any other field could change the answer without being in the key.
var fillFields = append(slices.Clone(httpcache.NegotiationFields), "Authorization", "Cookie")

// forwarded are the forwarding fields swrproxy sets itself (forwardedValue).
var forwarded = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip"}

// forwardHeader builds the request fields for the origin; raw is a copy of the client's fields as
// they came (minus the fields its Connection names, which the origin never sees, so no variant
// may be keyed on them).
//
// A cacheable GET (fill) is answered once for everyone who shares the key, so it forwards only
// what is the same for all of them or part of the key: fillFields, the fields named in vary (the
// key's variants vary on them), each as one line (the joined value a variant is keyed on, RFC
// 9110 §5.3), Accept-Encoding normalised, and swrproxy's own forwarding fields. When the origin
// turns out to vary on a field the fill did not send, refresh.Filler fetches again with it.
//
// A pass-through carries the client's fields as they are, except that the forwarding fields of a
// peer that is not a trusted proxy are dropped (and swrproxy's own set).
func (h *Handler) forwardHeader(c *fiber.Ctx, forFill bool, vary []string) (hdr, raw http.Header) {
	hdr, raw = make(http.Header, 16), make(http.Header, 16)
	rh := &c.Request().Header
	trusted := h.trusted(c)
	rh.VisitAll(func(k, v []byte) {
		name := http.CanonicalHeaderKey(string(k))
		value := string(v)
		raw[name] = append(raw[name], value)
		switch {
		case name == "Host", name == "Content-Length":
			return
		case httpcache.ForwardingField(name) && (forFill || !trusted):
			return
		case forFill && !slices.Contains(fillFields, name) && !slices.Contains(vary, name) && name != "Connection":
			return
		}
		hdr[name] = append(hdr[name], value)
	})
	for _, n := range upstream.RemoveHopByHop(hdr) {
		delete(raw, http.CanonicalHeaderKey(n))
	}
	if forFill {
		for name, vs := range hdr {
			if len(vs) > 1 || strings.Trim(vs[0], " \t") != vs[0] {
				hdr[name] = []string{strings.Trim(httpcache.JoinLines(name, vs), " \t")}
			}
			if hdr[name][0] == "" {
				delete(hdr, name) // an empty field is absent to the key and the variants: so to the origin
			}
		}
		hdr.Del("Accept-Encoding")
		if enc := httpcache.VaryValue("Accept-Encoding", httpcache.JoinLines("Accept-Encoding", raw["Accept-Encoding"])); enc != "" {
			hdr.Set("Accept-Encoding", enc)
		}
	}
	for _, name := range forwarded {
		if v := h.forwardedValue(c, name, forFill); v != "" {
			hdr.Set(name, v)
		} else {
			hdr.Del(name)
		}
	}
	return hdr, raw
}

// forwardedValue is the value swrproxy sends for one of its forwarding fields ("" = none). From a
// trusted proxy (nginx) its values are believed; from anyone else, swrproxy states what it knows.
//
//   - X-Forwarded-For: on a fill only the client's address (the last hop a trusted proxy names,
//     else the peer): a fill's answer is shared, and the client's own list is not part of the key;
//     on a pass-through, a trusted proxy's list with the peer appended, else the peer.
//   - X-Forwarded-Proto: a trusted proxy's http or https, else this listener's scheme.
//   - X-Forwarded-Host: on a fill the keyed host (SWR_KEY_HOST), else none (the host must not
//     shape an answer when it is not in the key); on a pass-through, a trusted proxy's, else Host.
//   - X-Real-IP: a trusted proxy's.
func (h *Handler) forwardedValue(c *fiber.Ctx, name string, forFill bool) string {
	rh := &c.Request().Header
	trusted := h.trusted(c)
	prior := func() string {
		if !trusted {
			return ""
		}
		return strings.Trim(b2s(bytes.Join(rh.PeekAll(name), []byte(", "))), " \t")
	}
	switch name {
	case "X-Forwarded-For":
		peer := c.Context().RemoteIP().String()
		chain := prior()
		switch {
		case chain == "":
			return peer
		case forFill:
			last := chain[strings.LastIndexByte(chain, ',')+1:]
			return strings.TrimSpace(last)
		}
		return chain + ", " + peer
	case "X-Forwarded-Proto":
		if p := strings.ToLower(prior()); p == "http" || p == "https" {
			return p
		}
		if c.Context().IsTLS() {
			return "https"
		}
		return "http"
	case "X-Forwarded-Host":
		if forFill {
			return h.keyHost(c)
		}
		if v := prior(); v != "" {
			return v
		}
		return string(rh.Host())
	case "X-Real-Ip":
		return prior()
	}
	return ""
}
