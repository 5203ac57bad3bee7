package policy

import (
	"bytes"
	"strings"

	"github.com/swrproxy/swrproxy/httpcache"
)

// Fields looks up a request header by name; Peek returns nil (or an empty slice) when the
// header is absent. Names are given as written in the rules file, so Peek should compare them
// case-insensitively. *fasthttp.RequestHeader satisfies it, so a fasthttp request is adapted
// without copying or allocating.
type Fields interface {
	Peek(name string) []byte
}

// Request is what matching looks at. The slices are read during the call only and never
// retained, so they may alias fasthttp's reused buffers.
type Request struct {
	Method []byte // e.g. "GET"
	Host   []byte // the Host header or URI host, with or without ":port" and a trailing dot
	Path   []byte // the decoded path (fasthttp's URI().Path(), DecodePath); the key holds the raw one
	Query  []byte // the raw query string, without "?"
	Header Fields // may be nil: then no header condition holds
}

// matcher is a rule's compiled match conditions. A zero matcher matches every request.
type matcher struct {
	methods []string
	path    *glob
	prefix  string
	host    string // ruleHost's form: lower case, no trailing dot, no port
	fold    bool   // the path (prefix and glob) matches in either letter case (key.case_insensitive_path)
	header  []Pair
	query   []Pair
}

// Match returns the first rule whose conditions all hold for req, or nil when none does (or r
// is nil). It does not allocate and is safe for concurrent use.
func (r *Rules) Match(req Request) *Rule {
	if r == nil {
		return nil
	}
	for _, rule := range r.rules {
		if rule.match.matches(&req) {
			return rule
		}
	}
	return nil
}

// Matches reports whether every one of the rule's match conditions holds for req.
func (rule *Rule) Matches(req Request) bool { return rule.match.matches(&req) }

func (m *matcher) matches(req *Request) bool {
	if len(m.methods) > 0 && !methodIn(req.Method, m.methods) {
		return false
	}
	if m.prefix != "" && !(bytes.HasPrefix(req.Path, []byte(m.prefix)) || m.fold && hasPrefixFold(req.Path, m.prefix)) {
		return false
	}
	if m.path != nil && !m.path.match(req.Path) {
		return false
	}
	if m.host != "" && !hostIs(req.Host, m.host) {
		return false
	}
	for _, h := range m.header {
		if req.Header == nil {
			return false
		}
		v := req.Header.Peek(h.Name)
		if len(v) == 0 || (h.Value != "*" && string(v) != h.Value) {
			return false
		}
	}
	for _, q := range m.query {
		if !queryHas(req.Query, q.Name, q.Value) {
			return false
		}
	}
	return true
}

func methodIn(method []byte, methods []string) bool {
	for _, m := range methods {
		if string(method) == m { // compiled without a conversion
			return true
		}
	}
	return false
}

// hostIs reports whether host, a Host field value, names want (a ruleHost) on any port: both in
// the form the cache key gives a host (httpcache.AppendHost: lower case, no trailing dot), so
// that a rule matches every spelling of the host its entries are keyed by. A host AppendHost
// refuses matches nothing. It does not allocate.
func hostIs(host []byte, want string) bool {
	var buf [maxHost]byte
	h, ok := httpcache.AppendHost(buf[:0], host, "")
	return ok && string(withoutPort(h)) == want
}

// maxHost is room for any host AppendHost accepts (255 bytes of name, brackets and a port).
const maxHost = 255 + 2 + 6

// withoutPort returns host (AppendHost's form) without its ":port", if any; a bracketed IPv6
// literal keeps its brackets.
func withoutPort(host []byte) []byte {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[i:], ']') < 0 {
		return host[:i]
	}
	return host
}

// ruleHost is the host of a rule's match.host as hostIs compares it (httpcache.AppendHost's
// form: "Shop.Example." is "shop.example"), and false when s is not a host name alone: empty,
// with a port (or an empty one), a scheme or a path.
func ruleHost(s string) (string, bool) {
	h, ok := httpcache.AppendHost(nil, []byte(s), "")
	if !ok || strings.HasSuffix(s, ":") || len(withoutPort(h)) != len(h) {
		return "", false
	}
	return string(h), true
}

// hasPrefixFold reports whether s starts with prefix, ASCII letters compared in either case.
func hasPrefixFold(s []byte, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lower(s[i]) != lower(prefix[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// queryHas reports whether the raw query has a parameter named name (compared after
// percent-decoding) whose decoded value is value, or any value when value is "*".
func queryHas(raw []byte, name, value string) bool {
	for len(raw) > 0 {
		var pair []byte
		pair, raw = cut(raw, '&')
		k, v := cut(pair, '=')
		if len(pair) == 0 || !unescapedIs(k, name) {
			continue
		}
		if value == "*" || unescapedIs(v, value) {
			return true
		}
	}
	return false
}

// cut is bytes.Cut without the "found" result.
func cut(s []byte, sep byte) (before, after []byte) {
	if i := bytes.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, nil
}

// unescapedIs reports whether raw, decoded as a query component ("+" is a space, "%XX" a byte,
// a malformed escape itself), equals want; it decodes on the fly instead of into a buffer.
func unescapedIs(raw []byte, want string) bool {
	j := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]):
			c = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
		}
		if j >= len(want) || want[j] != c {
			return false
		}
		j++
	}
	return j == len(want)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
