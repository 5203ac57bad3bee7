package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/swrproxy/swrproxy/config"
	"github.com/swrproxy/swrproxy/httpcache"
)

// The scalar values of a rules file: strings, lists, tokens, header pairs, durations and booleans,
// each checked where it is read, with the node's line for the error.

// kind checks that n is of the wanted kind, reporting what it is instead.
func (p *parser) kind(n *yaml.Node, field string, want yaml.Kind) bool {
	if n.Kind == yaml.AliasNode {
		p.fail(n, field, "YAML aliases are not supported")
		return false
	}
	if n.Kind == want {
		return true
	}
	if want != yaml.ScalarNode && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return false // "match:" with nothing after it: an empty mapping (or list), not an error
	}
	p.fail(n, field, "is %s, want %s", describe(n), kindName(want))
	return false
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a single value"
}

func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return kindName(n.Kind)
}

const errFraming = "may not be edited (it frames the message or belongs to the connection, RFC 9110 §7.6.1)"

// str returns the scalar n's text, reporting any other kind.
func (p *parser) str(n *yaml.Node, field string) string {
	if !p.kind(n, field, yaml.ScalarNode) {
		return ""
	}
	return n.Value
}

// list returns the items of the sequence n, reporting any other kind.
func (p *parser) list(n *yaml.Node, field string) []*yaml.Node {
	if !p.kind(n, field, yaml.SequenceNode) {
		return nil
	}
	return n.Content
}

// tokens returns a list of RFC 9110 tokens (method, header or cookie names); what names them.
func (p *parser) tokens(n *yaml.Node, field, what string) []string {
	var out []string
	for j, tn := range p.list(n, field) {
		tf := fmt.Sprintf("%s[%d]", field, j)
		s := p.str(tn, tf)
		if tn.Kind == yaml.ScalarNode && !httpcache.IsToken(s) {
			p.fail(tn, tf, "%q is not %s (an RFC 9110 token)", s, what)
			continue
		}
		out = append(out, s)
	}
	return out
}

// pairs returns the mapping n as name/value pairs in file order. With what set, names must be
// tokens; with set (header values to send), values must be valid field values, and "*" is not
// special.
func (p *parser) pairs(n *yaml.Node, field, what string, set bool) []Pair {
	var out []Pair
	p.mapping(n, field, func(key string, v *yaml.Node) bool {
		f := join(field, key)
		if what != "" && !httpcache.IsToken(key) {
			p.fail(n, f, "%q is not %s (an RFC 9110 token)", key, what)
			return true
		}
		val := p.str(v, f)
		if v.Kind == yaml.ScalarNode && !httpcache.IsFieldValue(val) {
			p.fail(v, f, "%q is not a header value (control characters are not allowed)", val)
			return true
		}
		if !set && what != "" && val == "" {
			p.fail(v, f, `is empty (use "*" for "present")`)
			return true
		}
		out = append(out, Pair{key, val})
		return true
	})
	return out
}

// duration parses a duration in Go syntax or a bare number of seconds (config.ParseDuration).
func (p *parser) duration(n *yaml.Node, field string) *time.Duration {
	if !p.kind(n, field, yaml.ScalarNode) {
		return nil
	}
	d, err := config.ParseDuration(n.Value)
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "must") {
			msg = "is " + msg
		}
		p.fail(n, field, "%q %s", n.Value, msg)
		return nil
	}
	return &d
}

// boolean parses true or false (in any YAML 1.2 spelling: true, True, TRUE).
func (p *parser) boolean(n *yaml.Node, field string) *bool {
	if !p.kind(n, field, yaml.ScalarNode) {
		return nil
	}
	var b bool
	if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		p.fail(n, field, "%q is not a boolean (use true or false)", n.Value)
		return nil
	}
	return &b
}

// flag is boolean for fields where absent means false.
func (p *parser) flag(n *yaml.Node, field string) bool {
	b := p.boolean(n, field)
	return b != nil && *b
}
