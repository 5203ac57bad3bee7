package policy

// The checks a rule passes at load beyond its values' syntax: that requests sharing a cache key
// take the same rule, and that a key records no field a fill does not send as the client wrote it.

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/swrproxy/swrproxy/httpcache"
)

// coherent refuses a rule whose conditions would let requests that share a cache key take
// different rules, so that one rule's answer (its ttl, its edits, its tags) would be stored for
// the requests of another: a condition on a request field or query parameter the key leaves out,
// or GET without HEAD (a HEAD is answered from the GET's entry). A rule with cache: false stores
// nothing, so it may match on anything.
func (p *parser) coherent(n *yaml.Node, field string, r *Rule) {
	if r.Bypass() {
		return
	}
	m := valueOf(n, "match")
	if ms := r.match.methods; slices.Contains(ms, "GET") != slices.Contains(ms, "HEAD") {
		has, lacks := "GET", "HEAD"
		if slices.Contains(ms, "HEAD") {
			has, lacks = lacks, has
		}
		p.fail(valueOf(m, "methods"), field+".match.methods", "lists %s without %s: a HEAD is answered from the GET's entry, so both must take the same rule (list both, or set cache: false)", has, lacks)
	}
	for _, h := range r.match.header {
		if !slices.ContainsFunc(r.key.headers, func(k string) bool { return strings.EqualFold(k, h.Name) }) {
			p.fail(valueOf(m, "header"), field+".match.header."+h.Name, "is not in key.include_headers: requests with and without it would share entries filled under either rule (add it to key.include_headers, or set cache: false)")
		}
	}
	for _, q := range r.match.query {
		if r.key.ignored([]byte(q.Name)) {
			p.fail(valueOf(m, "query"), field+".match.query."+q.Name, "is left out of the key by key.ignore_query: requests with and without it would share entries filled under either rule")
		}
	}
}

// valueOf returns the value of key in the mapping n, or n itself when there is none (so an
// error still points at a line).
func valueOf(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1]
			}
		}
	}
	return n
}

// unkeyable says why a request field may not be in key.include_headers ("" when it may):
//   - a credential: the key is stored in Redis and listed by /_swr/keys, so no secret goes in it;
//   - a forwarding field (X-Forwarded-*, Forwarded, X-Real-IP, …): a fill sends swrproxy's own
//     value, not the client's, so keying on the client's would key on what the origin never saw;
//   - Host (SWR_KEY_HOST keys on it), and the fields of the connection and the message framing,
//     which are never forwarded as the client sent them.
func unkeyable(name string) string {
	switch {
	case credential(name):
		return "carries credentials and may not be part of the cache key (for a cookie, use include_cookies)"
	case httpcache.ForwardingField(name):
		return "is a forwarding field: a fill sends swrproxy's own value, never the client's, so it cannot be keyed on"
	case name == "Host":
		return "is keyed by SWR_KEY_HOST, not by include_headers"
	case slices.Contains(connectionFields, name):
		return "belongs to the connection or the message framing and is never forwarded as sent"
	}
	return ""
}

// connectionFields are the fields of the connection (httpcache.ConnectionFields) and of the
// message's framing and conditions, which a fill sets itself.
var connectionFields = slices.Concat(httpcache.ConnectionFields, []string{"Content-Length", "Expect", "If-None-Match",
	"If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range", "Cache-Control", "Pragma"})

// credential reports whether a field or cookie name looks like it carries a credential: those of
// httpcache.IsCredential, and the names session cookies and anti-forgery tokens go by.
func credential(name string) bool {
	if httpcache.IsCredential(name) {
		return true
	}
	l := strings.ToLower(name)
	for _, w := range credentialWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

var credentialWords = []string{"sess", "sid", "jwt", "logged", "remember", "csrf", "xsrf", "assertion", "signature", "saml", "bearer", "login", "identity"}
