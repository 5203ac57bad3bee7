package proxy

// The policy (SWR_POLICY_FILE and the Wasm hooks) on the request path: which rule applies, what
// the on_request hook says, the key they build, and the request fields they edit.

import (
	"bytes"
	"context"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/policy"
	"github.com/swrproxy/swrproxy/policy/wasm"
)

// Policy gives the policy in force (*policy.Holder); a nil one is no policy.
type Policy interface {
	Current() *policy.Policy
}

// route is what the policy says of one request.
type route struct {
	policy *policy.Policy   // the policy in force when the request came; nil for none
	rule   *policy.Rule     // the rule that applies; nil for none
	hook   *wasm.RequestOut // what on_request answered; nil without one (or when it failed)
	// ambiguous: no rule can be matched to the request safely (policy.Policy.Route: a path origins
	// resolve in different ways, or one a folding rule would key as another rule's): the request
	// is passed through, never stored.
	ambiguous bool
}

// route matches the request, with method m, against the policy in force and calls its
// on_request hook. Without a hook it does not allocate.
func (h *Handler) route(c *fiber.Ctx, m []byte) route {
	if h.Policy == nil {
		return route{}
	}
	p := h.Policy.Current()
	if p == nil {
		return route{}
	}
	uri := c.Request().URI()
	rh := &c.Request().Header
	raw := rh.RequestURI()
	if i := bytes.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	rt := route{policy: p}
	rt.rule, rt.ambiguous = p.Route(policy.Request{Method: m, Host: rh.Host(), Path: uri.Path(), Query: uri.QueryString(), Header: keyedFields{c}}, raw)
	if p.HasRequestHook() {
		out, ok := p.OnRequest(context.Background(), &wasm.RequestIn{Method: m, Host: rh.Host(), Path: uri.Path(), Query: uri.QueryString(), Header: rh})
		if ok {
			rt.hook = &out
		}
	}
	return rt
}

// bypass reports whether the policy says the request is not cached (cache: false, or the hook's
// bypass).
func (rt route) bypass() bool { return rt.rule.Bypass() || rt.hook != nil && rt.hook.Bypass }

// appendKey appends the cache key of the request to b (see httpcache.Key): the host when KeyHost
// is on (the validated, normalised Host: the guard refused the request if it is not valid), then
// the target (uri, or the hook's key) as the rule builds it (policy.Rule.AppendKey; without a
// rule, as it came), then the hook's key_add.
func (h *Handler) appendKey(b []byte, c *fiber.Ctx, rt route, uri []byte) []byte {
	if h.KeyHost {
		if kb := httpcache.AppendKeyHost(b, c.Request().Header.Host(), c.Context().IsTLS()); len(kb) > len(b) {
			b = append(kb, httpcache.KeySeparator)
		}
	}
	if rt.rule == nil && rt.hook == nil {
		return append(b, uri...)
	}
	if rt.hook != nil && rt.hook.HasKey {
		uri = []byte(rt.hook.Key)
	}
	path, query := uri, []byte(nil)
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		path, query = uri[:i], uri[i+1:]
	}
	b = rt.rule.AppendKey(b, path, query, keyedFields{c}, func(name string) []byte { return keyedCookie(c, name) })
	if rt.hook != nil && rt.hook.KeyAdd != "" {
		b = policy.AppendKeyAdd(b, rt.hook.KeyAdd)
	}
	return b
}

// key returns the request's cache key and the target a fill asks the origin for: the key's
// target part, which differs from the client's when the rule leaves query parameters out of the
// key, sorts them or folds the path, or the hook sets the key (the parameters a key ignores never
// reach the origin on a cacheable fill, so they cannot shape what everyone sharing the entry is
// served).
func (h *Handler) key(c *fiber.Ctx, rt route) (key, target string) {
	key = string(h.appendKey(nil, c, rt, c.Request().Header.RequestURI()))
	return key, policy.ParseKey(key).Target
}

// keyed returns the canonical names of the request fields the rule keys on: a fill forwards
// them, as it forwards the fields the key's variants vary on.
func (rt route) keyed() []string {
	if rt.rule == nil || len(rt.rule.Key.IncludeHeaders) == 0 {
		return nil
	}
	names := make([]string, len(rt.rule.Key.IncludeHeaders))
	for i, n := range rt.rule.Key.IncludeHeaders {
		names[i] = http.CanonicalHeaderKey(n)
	}
	return names
}

// replay returns the canonical names of the request fields the on_request hook set: the entry
// keeps their values for its background refreshes, which do not call the hook again.
func (rt route) replay() []string {
	if rt.hook == nil || len(rt.hook.Set) == 0 {
		return nil
	}
	names := make([]string, len(rt.hook.Set))
	for i, kv := range rt.hook.Set {
		names[i] = http.CanonicalHeaderKey(kv[0])
	}
	return names
}

// editRequest applies the policy's request actions to the fields sent to the origin: the rule's,
// then the hook's.
func (rt route) editRequest(hdr http.Header) {
	rt.rule.EditRequest(hdr)
	if rt.hook != nil {
		policy.EditFields(hdr, rt.hook.Set, rt.hook.Remove)
	}
}

// keyedFields gives the rules (match.header, key.include_headers) a request field's value as a
// fill forwards it (forwardHeader), so that what a key records is exactly what the origin is
// asked with: every line of the field joined (RFC 9110 §5.3) and trimmed, and none when the
// request's Connection names the field (hop-by-hop: never forwarded). It allocates only for a
// field sent on several lines.
type keyedFields struct{ c *fiber.Ctx }

func (f keyedFields) Peek(name string) []byte {
	rh := &f.c.Request().Header
	v := rh.Peek(name)
	if v == nil || inConnection(f.c, name) {
		return nil
	}
	if vs := rh.PeekAll(name); len(vs) > 1 {
		lines := make([]string, len(vs))
		for i, l := range vs {
			lines[i] = string(l)
		}
		return bytes.Trim([]byte(httpcache.JoinLines(name, lines)), " \t")
	}
	return bytes.Trim(v, " \t")
}

// keyedCookie is the value of the cookie name that the key records and a fill forwards
// (policy.Rule.FillCookies): its first occurrence over every Cookie line, none when Connection
// names Cookie. It does not allocate.
func keyedCookie(c *fiber.Ctx, name string) []byte {
	if inConnection(c, fiber.HeaderCookie) {
		return nil
	}
	for _, line := range c.Request().Header.PeekAll(fiber.HeaderCookie) {
		if v := policy.Cookie(line, name); v != nil {
			return v
		}
	}
	return nil
}
