package httpcache

// The subset of Structured Field Values (RFC 8941) that CDN-Cache-Control needs: a strict
// Dictionary parser whose members keep their bare item's type and value (Integer, Boolean,
// Token, String) and drop parameters. Decimals, Byte Sequences and Inner Lists are parsed, so
// that a field holding them is still valid, but their values are not kept.

// sfKind is the type of a Dictionary member's value.
type sfKind uint8

const (
	sfBoolean sfKind = iota
	sfInteger
	sfDecimal
	sfString
	sfToken
	sfBytes
	sfInnerList
)

// sfMember is one Dictionary member: its key and its value, without parameters.
type sfMember struct {
	key  string
	kind sfKind
	num  int64  // an Integer's value; 1 or 0 for a Boolean
	str  string // a Token as written, or a String's content still escaped
}

// sfMaxMembers bounds a Dictionary: one with more members is treated as invalid (ignored whole),
// so an origin's header cannot make parsing quadratic.
const sfMaxMembers = 64

// sfMaxIntegerDigits is the most digits an sf-integer has (RFC 8941 §3.3.1).
const sfMaxIntegerDigits = 15

// parseSFDictionary parses a Dictionary field value (RFC 8941 §4.2.2; field lines joined with
// ", ", §4.2) and reports false when it is not one: then the whole field is ignored
// (RFC 8941 §4.2, RFC 9213 §2.1). A key given twice keeps its last value, at its first place.
// An empty or all-space value is an empty Dictionary.
func parseSFDictionary(s string) ([]sfMember, bool) {
	p := sfParser{s: s}
	p.skipSP()
	var dict []sfMember
	for p.more() {
		m, ok := p.member()
		if !ok {
			return nil, false
		}
		if dict = setMember(dict, m); len(dict) > sfMaxMembers {
			return nil, false // no real CDN-Cache-Control has that many; keep setMember linear
		}
		p.skipOWS()
		if !p.more() {
			break
		}
		if !p.eat(',') {
			return nil, false
		}
		p.skipOWS()
		if !p.more() {
			return nil, false // a trailing comma
		}
	}
	return dict, true
}

func setMember(dict []sfMember, m sfMember) []sfMember {
	for i := range dict {
		if dict[i].key == m.key {
			dict[i] = m
			return dict
		}
	}
	return append(dict, m)
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) more() bool { return p.i < len(p.s) }

func (p *sfParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *sfParser) eat(c byte) bool {
	if p.peek() == c && p.more() {
		p.i++
		return true
	}
	return false
}

func (p *sfParser) skipSP() {
	for p.more() && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.more() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// member parses key [ "=" member-value ] / key parameters.
func (p *sfParser) member() (sfMember, bool) {
	key, ok := p.key()
	if !ok {
		return sfMember{}, false
	}
	m := sfMember{key: key, kind: sfBoolean, num: 1}
	if p.eat('=') {
		if p.peek() == '(' {
			m = sfMember{key: key, kind: sfInnerList}
			ok = p.innerList()
		} else {
			m, ok = p.bareItem(key)
		}
		if !ok {
			return sfMember{}, false
		}
	}
	return m, p.parameters()
}

// key parses ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ).
func (p *sfParser) key() (string, bool) {
	start := p.i
	if c := p.peek(); !p.more() || !(c >= 'a' && c <= 'z' || c == '*') {
		return "", false
	}
	p.i++
	for p.more() {
		c := p.s[p.i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], true
}

// parameters parses *( ";" *SP key [ "=" bare-item ] ), discarding them.
func (p *sfParser) parameters() bool {
	for p.eat(';') {
		p.skipSP()
		key, ok := p.key()
		if !ok {
			return false
		}
		if p.eat('=') {
			if _, ok := p.bareItem(key); !ok {
				return false
			}
		}
	}
	return true
}

// innerList parses "(" *SP [ item *( 1*SP item ) *SP ] ")" parameters.
func (p *sfParser) innerList() bool {
	p.i++ // "("
	for {
		p.skipSP()
		if p.eat(')') {
			return p.parameters()
		}
		if _, ok := p.bareItem(""); !ok || !p.parameters() {
			return false
		}
		if c := p.peek(); !p.more() || c != ' ' && c != ')' {
			return false
		}
	}
}

// bareItem parses an Integer, Decimal, String, Token, Byte Sequence or Boolean.
func (p *sfParser) bareItem(key string) (sfMember, bool) {
	m := sfMember{key: key}
	var ok bool
	switch c := p.peek(); {
	case !p.more():
		return m, false
	case c == '-' || c >= '0' && c <= '9':
		m.kind, m.num, ok = p.number()
	case c == '"':
		m.kind = sfString
		m.str, ok = p.string()
	case c == ':':
		m.kind, ok = sfBytes, p.bytes()
	case c == '?':
		m.kind = sfBoolean
		m.num, ok = p.boolean()
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '*':
		m.kind, m.str, ok = sfToken, p.token(), true
	}
	return m, ok
}

// number parses sf-integer or sf-decimal (RFC 8941 §4.2.4).
func (p *sfParser) number() (sfKind, int64, bool) {
	neg := p.eat('-')
	start := p.i
	var n int64
	for p.more() && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		if p.i-start == sfMaxIntegerDigits {
			return 0, 0, false
		}
		n = n*10 + int64(p.s[p.i]-'0')
		p.i++
	}
	intDigits := p.i - start
	if intDigits == 0 {
		return 0, 0, false
	}
	if !p.eat('.') {
		if neg {
			n = -n
		}
		return sfInteger, n, true
	}
	if intDigits > 12 {
		return 0, 0, false
	}
	frac := p.i
	for p.more() && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if d := p.i - frac; d < 1 || d > 3 {
		return 0, 0, false
	}
	return sfDecimal, 0, true
}

// string parses DQUOTE *( unescaped / "\" ( DQUOTE / "\" ) ) DQUOTE of printable ASCII and
// returns its content still escaped.
func (p *sfParser) string() (string, bool) {
	p.i++ // DQUOTE
	start := p.i
	for p.more() {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return p.s[start : p.i-1], true
		case c == '\\':
			p.i++
			if c := p.peek(); !p.more() || c != '"' && c != '\\' {
				return "", false
			}
		case c < 0x20 || c > 0x7e:
			return "", false
		}
		p.i++
	}
	return "", false // not terminated
}

// token parses ( ALPHA / "*" ) *( tchar / ":" / "/" ); the first character is already checked.
func (p *sfParser) token() string {
	start := p.i
	p.i++
	for p.more() && (isTchar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
		p.i++
	}
	return p.s[start:p.i]
}

// bytes parses ":" *base64-char ":".
func (p *sfParser) bytes() bool {
	p.i++
	for p.more() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == ':':
			return true
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/', c == '=':
		default:
			return false
		}
	}
	return false
}

// boolean parses "?" ( "0" / "1" ).
func (p *sfParser) boolean() (int64, bool) {
	p.i++
	switch {
	case p.eat('1'):
		return 1, true
	case p.eat('0'):
		return 0, true
	}
	return 0, false
}
