package policy

import (
	"reflect"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// marshal writes rules back as a rules file from their exported fields, for FuzzParse.
func marshal(rules []*Rule) string {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, r := range rules {
		seq.Content = append(seq.Content, ruleNode(r))
	}
	root := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "rules"}, seq}}
	out, err := yaml.Marshal(root)
	if err != nil {
		panic(err)
	}
	return string(out)
}

// ruleNode is r as a YAML mapping.
func ruleNode(r *Rule) *yaml.Node {
	str := func(s string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle}
	}
	plain := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }
	list := func(ss []string) *yaml.Node {
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, s := range ss {
			n.Content = append(n.Content, str(s))
		}
		return n
	}
	pairs := func(ps []Pair) *yaml.Node {
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, p := range ps {
			n.Content = append(n.Content, str(p.Name), str(p.Value))
		}
		return n
	}
	mapping := func() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }
	add := func(m *yaml.Node, k string, v *yaml.Node) { m.Content = append(m.Content, plain(k), v) }
	dur := func(m *yaml.Node, k string, d *time.Duration) {
		if d != nil {
			add(m, k, plain(d.String()))
		}
	}
	boolean := func(m *yaml.Node, k string, b *bool) {
		if b != nil {
			add(m, k, plain(strconv.FormatBool(*b)))
		}
	}
	edits := func(e HeaderEdits) *yaml.Node {
		m := mapping()
		if e.Set != nil {
			add(m, "set", pairs(e.Set))
		}
		if e.Remove != nil {
			add(m, "remove", list(e.Remove))
		}
		return m
	}

	rule := mapping()
	if r.Name != "" {
		add(rule, "name", str(r.Name))
	}
	match := mapping()
	if r.Match.Methods != nil {
		add(match, "methods", list(r.Match.Methods))
	}
	for k, v := range map[string]string{"path": r.Match.Path, "path_prefix": r.Match.PathPrefix, "host": r.Match.Host} {
		if v != "" {
			add(match, k, str(v))
		}
	}
	if r.Match.Header != nil {
		add(match, "header", pairs(r.Match.Header))
	}
	if r.Match.Query != nil {
		add(match, "query", pairs(r.Match.Query))
	}
	add(rule, "match", match)
	dur(rule, "ttl", r.TTL)
	dur(rule, "default_ttl", r.DefaultTTL)
	dur(rule, "stale_while_revalidate", r.StaleWhileRevalidate)
	dur(rule, "stale_if_error", r.StaleIfError)
	boolean(rule, "cache", r.Cache)
	boolean(rule, "refresh_ahead", r.RefreshAhead)
	key := mapping()
	if r.Key.IgnoreQuery != nil {
		add(key, "ignore_query", list(r.Key.IgnoreQuery))
	}
	add(key, "sort_query", plain(strconv.FormatBool(r.Key.SortQuery)))
	if r.Key.IncludeHeaders != nil {
		add(key, "include_headers", list(r.Key.IncludeHeaders))
	}
	if r.Key.IncludeCookies != nil {
		add(key, "include_cookies", list(r.Key.IncludeCookies))
	}
	add(key, "case_insensitive_path", plain(strconv.FormatBool(r.Key.CaseInsensitivePath)))
	add(rule, "key", key)
	add(rule, "request_headers", edits(r.RequestHeaders))
	add(rule, "response_headers", edits(r.ResponseHeaders))
	add(rule, "strip_cookies", plain(strconv.FormatBool(r.StripCookies)))
	if r.KeepCookies != nil {
		add(rule, "keep_cookies", list(r.KeepCookies))
	}
	if r.TagTemplates != nil {
		add(rule, "tags", list(r.TagTemplates))
	}
	return rule
}

// sameRule reports whether a and b have the same exported fields, apart from their place.
func sameRule(a, b *Rule) bool {
	x, y := *a, *b
	for _, r := range []*Rule{&x, &y} {
		r.Index, r.Line = 0, 0
		r.match, r.key, r.tags = matcher{}, keyPlan{}, nil
	}
	return reflect.DeepEqual(x, y)
}
