package policy

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	"github.com/swrproxy/swrproxy/httpcache"
)

// keyPlan is a rule's compiled key options.
type keyPlan struct {
	ignore  []*glob
	sort    bool
	headers []string
	cookies []string
	fold    bool // case-insensitive path
}

// sortStack is how many query parameters AppendKey sorts without allocating; a longer query
// is still sorted, with one allocation.
const sortStack = 64

// AppendKey appends to dst the cache key of a request for path and rawQuery (without "?") under
// this rule, and returns the extended slice; it does not allocate when dst has room (and the
// query has at most 64 parameters to sort). The key is
//
//	path ["?" query] {"\n" header-name ": " value} {"\ncookie " name "=" value}
//
// where path is lower-cased (ASCII) under key.case_insensitive_path; query keeps the raw
// parameters except those whose decoded name matches a key.ignore_query glob, ordered by name
// under key.sort_query (so "?b=1&a=2" and "?a=2&b=1" share a key; a repeated name keeps its
// order), else in request order;
// one line follows for each of key.include_headers and key.include_cookies, in file order, with
// an empty value when absent and control bytes and "%" percent-encoded, so no value can forge
// another line. header or cookie may be nil (every value absent). A nil rule appends path and
// the whole query, the key without a policy.
func (rule *Rule) AppendKey(dst []byte, path, rawQuery []byte, header Fields, cookie func(name string) []byte) []byte {
	var k *keyPlan
	if rule != nil {
		k = &rule.key
	}
	if k != nil && k.fold {
		for _, c := range path {
			dst = append(dst, lower(c))
		}
	} else {
		dst = append(dst, path...)
	}
	switch {
	case len(rawQuery) == 0:
	case k == nil || len(k.ignore) == 0 && !k.sort:
		dst = append(dst, '?')
		dst = append(dst, rawQuery...)
	default:
		dst = k.appendQuery(dst, rawQuery)
	}
	if k == nil {
		return dst
	}
	for _, h := range k.headers {
		dst = append(dst, '\n')
		dst = append(dst, h...)
		dst = append(dst, ": "...)
		if header != nil {
			dst = appendValue(dst, header.Peek(h))
		}
	}
	for _, c := range k.cookies {
		dst = append(dst, "\ncookie "...)
		dst = append(dst, c...)
		dst = append(dst, '=')
		if cookie != nil {
			dst = appendValue(dst, cookie(c))
		}
	}
	return dst
}

// span is one query parameter's position in the raw query.
type span struct{ start, end int }

// appendQuery appends "?" and the parameters of raw that are kept, sorted if asked.
func (k *keyPlan) appendQuery(dst, raw []byte) []byte {
	var stack [sortStack]span
	spans := stack[:0]
	for i := 0; i < len(raw); {
		end := bytes.IndexByte(raw[i:], '&')
		if end < 0 {
			end = len(raw)
		} else {
			end += i
		}
		if end > i && !k.ignored(raw[i:end]) {
			spans = append(spans, span{i, end}) // allocates only past sortStack parameters
		}
		i = end + 1
	}
	if k.sort {
		// by name only, stable: a repeated parameter keeps its order ("a=2&a=1" is not "a=1&a=2"
		// to most origins)
		slices.SortStableFunc(spans, func(a, b span) int {
			an, _ := cut(raw[a.start:a.end], '=')
			bn, _ := cut(raw[b.start:b.end], '=')
			return bytes.Compare(an, bn)
		})
	}
	for i, s := range spans {
		if i == 0 {
			dst = append(dst, '?')
		} else {
			dst = append(dst, '&')
		}
		dst = append(dst, raw[s.start:s.end]...)
	}
	return dst
}

// maxDecodedName is the longest parameter name ignored() decodes before matching; a longer one
// is matched as written.
const maxDecodedName = 128

// ignored reports whether the parameter pair's decoded name matches an ignore_query glob.
func (k *keyPlan) ignored(pair []byte) bool {
	if len(k.ignore) == 0 {
		return false
	}
	name, _ := cut(pair, '=')
	var buf [maxDecodedName]byte
	if len(name) <= len(buf) && bytes.ContainsAny(name, "%+") {
		name = unescapeInto(buf[:0], name)
	}
	for _, g := range k.ignore {
		if g.match(name) {
			return true
		}
	}
	return false
}

// unescapeInto appends the query-decoded raw to dst; see unescapedIs.
func unescapeInto(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(raw) && isHex(raw[i+1]) && isHex(raw[i+2]):
			c = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
		}
		dst = append(dst, c)
	}
	return dst
}

// appendValue appends v with bytes below 0x20, DEL and "%" percent-encoded, so a value cannot
// start a line of its own in the key.
func appendValue(dst, v []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range v {
		if c < 0x20 || c == 0x7f || c == '%' {
			dst = append(dst, '%', hex[c>>4], hex[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// tagTemplate is a compiled tag: literal parts and {N} segment references, alternating.
type tagTemplate struct {
	parts []tagPart
}

type tagPart struct {
	lit string
	seg int // > 0: the seg-th path segment instead of lit
}

// maxSegment bounds N in {N}, which no real path needs more of.
const maxSegment = 64

// compileTag compiles a tag template, where {N} (N ≥ 1) stands for the Nth path segment and
// every other character for itself; a "{" that does not start a {N} is an error, so a typo
// like {x} is caught at load rather than producing a literal tag.
func compileTag(s string) (tagTemplate, error) {
	var t tagTemplate
	for s != "" {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			t.parts = append(t.parts, tagPart{lit: s})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, tagPart{lit: s[:i]})
		}
		if s[i] == '}' {
			return t, errTag
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return t, errTag
		}
		n, err := strconv.Atoi(s[i+1 : i+end])
		if err != nil || n < 1 || n > maxSegment || s[i+1] == '+' || s[i+1] == '0' {
			return t, errTag
		}
		t.parts = append(t.parts, tagPart{seg: n})
		s = s[i+end+1:]
	}
	if len(t.parts) == 0 {
		return t, errEmptyTag
	}
	return t, nil
}

// Tags returns the rule's tags for a response to path: each template with {N} replaced by the
// Nth segment of path ("/assets/logo.png": {1} is "assets", {2} is "logo.png"). A template
// whose segment is missing or empty yields no tag, so nothing is indexed under a tag that does
// not name anything; duplicates are dropped. It returns nil for a nil rule or no tags.
func (rule *Rule) Tags(path string) []string {
	if rule == nil || len(rule.tags) == 0 {
		return nil
	}
	var out []string
	var b strings.Builder
next:
	for _, t := range rule.tags {
		b.Reset()
		for _, p := range t.parts {
			if p.seg == 0 {
				b.WriteString(p.lit)
				continue
			}
			seg := segment(path, p.seg)
			if seg == "" {
				continue next
			}
			b.WriteString(seg)
		}
		if tag := b.String(); !slices.Contains(out, tag) {
			out = append(out, tag)
		}
	}
	return out
}

// segment returns the nth (from 1) "/"-separated segment of path, not counting the empty one
// before a leading "/", or "" when there is none.
func segment(path string, n int) string {
	path = strings.TrimPrefix(path, "/")
	for i := 1; ; i++ {
		seg, rest, found := strings.Cut(path, "/")
		if i == n {
			return seg
		}
		if !found {
			return ""
		}
		path = rest
	}
}

// AppendKeyAdd appends to a cache key the line a Wasm hook's key_add gives (see [Rule.AppendKey]
// for the key's layout): "\nwasm " and the value, percent-encoded as header values are.
func AppendKeyAdd(dst []byte, v string) []byte {
	dst = append(dst, "\nwasm "...)
	return appendValue(dst, []byte(v))
}

// KeyParts are the parts of a cache key: httpcache.Key's host and target, the target extended by
// the lines a rule or a hook added (Rule.AppendKey, AppendKeyAdd).
type KeyParts struct {
	Host        string // "" when the key has none (SWR_KEY_HOST off)
	Target      string // path and query: what a fill asks the origin for
	Path, Query string // Target split at its first "?" (Query without it)
	Lines       string // from the first "\n" on; "" when the key has none (KeyFields reads them)
}

// ParseKey splits a cache key into its parts. It is the one reader of the key's layout outside
// the code that builds it: the proxy, refreshes, the hooks and invalidations all use it.
func ParseKey(key string) KeyParts {
	host, uri := httpcache.SplitKey(key)
	target, lines := SplitKeyLines(uri)
	path, query, _ := strings.Cut(target, "?")
	return KeyParts{Host: host, Target: target, Path: path, Query: query, Lines: lines}
}

// SplitKeyLines splits the target part of a cache key (after the host, see httpcache.SplitKey)
// into the target and the lines a rule or a hook added, which start at the first "\n".
func SplitKeyLines(uri string) (target, lines string) {
	if i := strings.IndexByte(uri, '\n'); i >= 0 {
		return uri[:i], uri[i:]
	}
	return uri, ""
}

// KeyFields returns the request headers and cookies recorded in a key's lines (SplitKeyLines),
// decoded: what a background refresh of the key sends again, so that it asks the origin for the
// same variant. Absent (empty) values are left out, and so are the lines of a Wasm hook, which
// name no field.
func KeyFields(lines string) (header []Pair, cookies []Pair) {
	for line := range strings.SplitSeq(strings.TrimPrefix(lines, "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "cookie "); ok {
			if name, v, ok := strings.Cut(rest, "="); ok && v != "" {
				cookies = append(cookies, Pair{name, unescapeValue(v)})
			}
			continue
		}
		if name, v, ok := strings.Cut(line, ": "); ok && v != "" && !strings.Contains(name, " ") {
			header = append(header, Pair{name, unescapeValue(v)})
		}
	}
	return header, cookies
}

// unescapeValue undoes appendValue's percent-encoding.
func unescapeValue(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
			b.WriteByte(unhex(v[i+1])<<4 | unhex(v[i+2]))
			i += 2
			continue
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
