package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/swrproxy/swrproxy/httpcache"
)

// maxErrors bounds how many problems one Parse reports, so a file of garbage gives a readable
// error rather than thousands of lines.
const maxErrors = 20

var (
	errTag      = errors.New(`is not a tag template ("{N}" with N from 1 to 64 names the Nth path segment; other braces are not allowed)`)
	errEmptyTag = errors.New("is empty")
)

// Error is one problem in a rules file. Parse returns it, or several joined with errors.Join.
type Error struct {
	File  string // the name given to Parse
	Line  int    // 1-based; 0 when the problem has no place (the file is too large)
	Field string // e.g. "rules[0].ttl"; "" for a YAML syntax error
	Msg   string // what is wrong, naming the bad value
}

// Error formats e as "policy: FILE:LINE: FIELD: MSG".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("policy: ")
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and parses the rules file at path; see Parse. A file larger than MaxFileSize is
// rejected without being read whole.
func Load(path string) (*Rules, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("policy: read %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse parses and compiles a rules file; name is used in errors only. Every problem found is
// reported (up to 20), each as an *Error naming name:line, the field and the bad value, joined
// with errors.Join; unknown fields, duplicate keys, YAML aliases and a second document are
// problems too. The file must be a mapping with a "rules" list (which may be empty).
func Parse(name string, data []byte) (*Rules, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Line: 1, Field: "rules", Msg: "missing (the file is empty)"}
		}
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(name, err)
		}
		return nil, &Error{File: name, Line: extra.Line, Msg: "a second YAML document (one rules file holds one)"}
	}
	p := &parser{file: name}
	rules := p.root(doc.Content[0])
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return &Rules{file: name, rules: rules}, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: …") into an *Error with its line.
func yamlError(name string, err error) error {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return &Error{File: name, Line: line, Msg: "invalid YAML: " + msg}
}

// parser walks the YAML node tree, so that every error can name the line and the field.
type parser struct {
	file string
	errs []error
}

func (p *parser) fail(n *yaml.Node, field, format string, args ...any) {
	if len(p.errs) == maxErrors {
		p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Msg: "too many problems; stopped"})
	}
	if len(p.errs) > maxErrors {
		return
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// mapping calls f for each key of the mapping n, in order; f reports whether it knows the key.
// Unknown and duplicate keys are reported here.
func (p *parser) mapping(n *yaml.Node, field string, f func(key string, v *yaml.Node) bool) {
	if !p.kind(n, field, yaml.MappingNode) {
		return
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.fail(k, field, "a key is %s, want a name", kindName(k.Kind))
			continue
		}
		sub := join(field, k.Value)
		switch {
		case k.Value == "<<":
			p.fail(k, sub, "YAML merge keys are not supported")
		case seen[k.Value]:
			p.fail(k, sub, "given twice")
		case !f(k.Value, v):
			p.fail(k, sub, "unknown field")
		}
		seen[k.Value] = true
	}
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func (p *parser) root(n *yaml.Node) []*Rule {
	var rules []*Rule
	found := false
	p.mapping(n, "", func(key string, v *yaml.Node) bool {
		if key != "rules" {
			return false
		}
		found = true
		if !p.kind(v, "rules", yaml.SequenceNode) {
			return true
		}
		if len(v.Content) > MaxRules {
			p.fail(v, "rules", "has %d rules, more than %d", len(v.Content), MaxRules)
			return true
		}
		for i, rn := range v.Content {
			if r := p.rule(rn, i); r != nil {
				rules = append(rules, r)
			}
		}
		return true
	})
	if !found && n.Kind == yaml.MappingNode {
		p.fail(n, "rules", "missing")
	}
	return rules
}

func (p *parser) rule(n *yaml.Node, i int) *Rule {
	field := fmt.Sprintf("rules[%d]", i)
	r := &Rule{Index: i, Line: n.Line}
	var stripNode *yaml.Node
	p.mapping(n, field, func(key string, v *yaml.Node) bool {
		f := join(field, key)
		switch key {
		case "name":
			r.Name = p.str(v, f)
		case "match":
			p.match(v, f, r)
		case "ttl":
			r.TTL = p.duration(v, f)
		case "default_ttl":
			r.DefaultTTL = p.duration(v, f)
		case "stale_while_revalidate":
			r.StaleWhileRevalidate = p.duration(v, f)
		case "stale_if_error":
			r.StaleIfError = p.duration(v, f)
		case "cache":
			r.Cache = p.boolean(v, f)
		case "refresh_ahead":
			r.RefreshAhead = p.boolean(v, f)
		case "key":
			p.key(v, f, r)
		case "request_headers":
			r.RequestHeaders = p.edits(v, f)
		case "response_headers":
			r.ResponseHeaders = p.edits(v, f)
		case "strip_cookies":
			if b := p.boolean(v, f); b != nil {
				r.StripCookies = *b
				stripNode = v
			}
		case "keep_cookies":
			r.KeepCookies = p.tokens(v, f, "a cookie name")
			if r.KeepCookies == nil {
				r.KeepCookies = []string{} // given, even if empty: keep none
			}
		case "tags":
			for j, tn := range p.list(v, f) {
				tf := fmt.Sprintf("%s[%d]", f, j)
				s := p.str(tn, tf)
				t, err := compileTag(s)
				if err != nil {
					p.fail(tn, tf, "%q %v", s, err)
					continue
				}
				r.TagTemplates = append(r.TagTemplates, s)
				r.tags = append(r.tags, t)
			}
		default:
			return false
		}
		return true
	})
	if r.StripCookies && r.KeepCookies != nil {
		p.fail(stripNode, field+".strip_cookies", "and keep_cookies exclude each other (strip_cookies drops every cookie)")
	}
	if r.key.fold {
		r.match.fold = true
		if r.match.path != nil {
			r.match.path.foldCase()
		}
	}
	p.coherent(n, field, r)
	return r
}

func (p *parser) match(n *yaml.Node, field string, r *Rule) {
	m := &r.Match
	p.mapping(n, field, func(key string, v *yaml.Node) bool {
		f := join(field, key)
		switch key {
		case "methods":
			m.Methods = p.tokens(v, f, "a method")
			for j, meth := range m.Methods {
				if strings.ToUpper(meth) != meth {
					// Methods are case-sensitive (RFC 9110 §9.1): "get" would never match a GET.
					p.fail(v.Content[j], fmt.Sprintf("%s[%d]", f, j), "%q is not upper case (methods are case-sensitive; write %q)", meth, strings.ToUpper(meth))
				}
			}
			r.match.methods = m.Methods
		case "path":
			m.Path = p.str(v, f)
			if !strings.HasPrefix(m.Path, "/") && !strings.HasPrefix(m.Path, "**") {
				p.fail(v, f, "%q does not start with \"/\" or \"**\" (it is matched against the whole path, which starts with \"/\")", m.Path)
				return true
			}
			g, err := compileGlob(m.Path, '/')
			if err != nil {
				p.fail(v, f, "%q: %v", m.Path, err)
				return true
			}
			r.match.path = g
		case "path_prefix":
			m.PathPrefix = p.str(v, f)
			if m.PathPrefix == "" || m.PathPrefix[0] != '/' {
				p.fail(v, f, "%q does not start with \"/\"", m.PathPrefix)
			}
			r.match.prefix = m.PathPrefix
		case "host":
			m.Host = p.str(v, f)
			h, ok := ruleHost(m.Host)
			if !ok {
				p.fail(v, f, "%q is not a host name (no port, scheme or path)", m.Host)
			}
			r.match.host = h
		case "header":
			m.Header = p.pairs(v, f, "a header name", false)
			r.match.header = m.Header
		case "query":
			m.Query = p.pairs(v, f, "", false)
			for _, q := range m.Query {
				if q.Name == "" {
					p.fail(v, f, "a parameter name is empty")
				}
			}
			r.match.query = m.Query
		default:
			return false
		}
		return true
	})
}

func (p *parser) key(n *yaml.Node, field string, r *Rule) {
	k := &r.Key
	p.mapping(n, field, func(key string, v *yaml.Node) bool {
		f := join(field, key)
		switch key {
		case "ignore_query":
			for j, gn := range p.list(v, f) {
				gf := fmt.Sprintf("%s[%d]", f, j)
				s := p.str(gn, gf)
				g, err := compileGlob(s, -1)
				if err != nil {
					p.fail(gn, gf, "%q: %v", s, err)
					continue
				}
				k.IgnoreQuery = append(k.IgnoreQuery, s)
				r.key.ignore = append(r.key.ignore, g)
			}
		case "sort_query":
			k.SortQuery = p.flag(v, f)
			r.key.sort = k.SortQuery
		case "include_headers":
			k.IncludeHeaders = p.tokens(v, f, "a header name")
			for j, h := range k.IncludeHeaders {
				if why := unkeyable(http.CanonicalHeaderKey(h)); why != "" {
					p.fail(v.Content[j], fmt.Sprintf("%s[%d]", f, j), "%q %s", h, why)
				}
			}
			r.key.headers = k.IncludeHeaders
		case "include_cookies":
			k.IncludeCookies = p.tokens(v, f, "a cookie name")
			for j, c := range k.IncludeCookies {
				if credential(c) {
					p.fail(v.Content[j], fmt.Sprintf("%s[%d]", f, j), "%q looks like a credential (its name has key, token, secret, session, sid, password, auth, jwt, csrf, …) and may not be part of the cache key", c)
				}
			}
			r.key.cookies = k.IncludeCookies
		case "case_insensitive_path":
			k.CaseInsensitivePath = p.flag(v, f)
			r.key.fold = k.CaseInsensitivePath
		default:
			return false
		}
		return true
	})
}

func (p *parser) edits(n *yaml.Node, field string) HeaderEdits {
	var e HeaderEdits
	p.mapping(n, field, func(key string, v *yaml.Node) bool {
		f := join(field, key)
		switch key {
		case "set":
			e.Set = p.pairs(v, f, "a header name", true)
			for _, h := range e.Set {
				if httpcache.FramingField(h.Name) {
					p.fail(v, join(f, h.Name), "%s", errFraming)
				}
			}
		case "remove":
			e.Remove = p.tokens(v, f, "a header name")
			for j, h := range e.Remove {
				if httpcache.FramingField(h) {
					p.fail(v.Content[j], fmt.Sprintf("%s[%d]", f, j), "%q %s", h, errFraming)
				}
			}
		default:
			return false
		}
		return true
	})
	return e
}
