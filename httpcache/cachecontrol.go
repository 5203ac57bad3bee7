package httpcache

import (
	"net/textproto"
	"slices"
	"strings"
	"time"
)

// Unset marks a delta-seconds directive that is absent.
const Unset time.Duration = -1

// maxDeltaSeconds is the largest delta-seconds a cache must represent: a larger value, or a
// calculation that overflows, is read as 2^31 seconds (RFC 9111 §1.2.2).
const maxDeltaSeconds = 2147483648

// maxDelta is maxDeltaSeconds as a Duration (about 68 years).
const maxDelta = maxDeltaSeconds * time.Second

// maxStaleAny is CacheControl.MaxStale for a bare max-stale: the client accepts a stale
// response however stale it is (RFC 9111 §5.2.1.2). It is 1<<62 ns, about 146 years.
const maxStaleAny time.Duration = 1 << 62

// CacheControl is a parsed Cache-Control field (RFC 9111 §5.2). Duration fields are Unset when the directive is absent.
//
// The zero value is not "nothing parsed" (its durations are 0, not Unset): use ParseCacheControl("").
type CacheControl struct {
	NoStore, NoCache, Private, Public, MustRevalidate, ProxyRevalidate, NoTransform, Immutable, OnlyIfCached bool
	// MustUnderstand is must-understand (RFC 9111 §5.2.2.3): store only if the cache understands
	// the status code, and then despite no-store.
	MustUnderstand bool
	// NoCacheFields / PrivateFields are the canonical (textproto.CanonicalMIMEHeaderKey) field names of the qualified
	// forms no-cache="Set-Cookie, X-Foo" / private="…"; when a qualified form is present the corresponding bool
	// (NoCache / Private) stays false — qualified forms only forbid sending those fields from cache.
	// Names are deduplicated and kept in order of first appearance.
	NoCacheFields, PrivateFields []string
	// MaxStale is 1<<62 ns for a bare max-stale ("any staleness"); every other duration is
	// Unset or within [0, 2^31 s].
	MaxAge, SMaxAge, StaleWhileRevalidate, StaleIfError, MaxStale, MinFresh time.Duration
}

// ParseCacheControl parses a Cache-Control field value; callers join repeated field lines with ", ".
//
// Directive names are case-insensitive (ASCII only); arguments may be tokens or quoted-strings,
// and a comma inside a quoted-string does not end the directive. Unknown directives and names
// that are not tokens are ignored. Malformed input is read the conservative way:
//
//   - delta-seconds are digits only; a value over 2^31 s is capped at 2^31 s (RFC 9111 §1.2.2).
//     The quoted form (max-age="60") is read like the token form: senders must not generate it
//     (RFC 9111 §5.2.1.1), but RFC 9111 §5.2 says recipients ought to accept both forms.
//     (CDN-Cache-Control is stricter: there a String is not an Integer, see targeted.)
//   - max-age or s-maxage malformed, without a value, or repeated with different values → 0
//     (the response is stale; RFC 9111 §4.2.1 allows that reading).
//   - stale-while-revalidate, stale-if-error, max-stale and min-fresh: a malformed value is
//     ignored; repeats keep the strictest value (the smallest, or for min-fresh the largest).
//   - max-stale without a value means any staleness: 1<<62 ns.
//   - no-cache or private whose argument is malformed or names no field act as the unqualified
//     directive; both forms may appear together.
//   - directives that restrict caching (no-store, must-revalidate, proxy-revalidate,
//     no-transform, only-if-cached) count even with an unexpected argument; directives that
//     widen it (public, immutable, must-understand) count only without one.
//
// It never panics. Input without quoted-strings is parsed without allocating.
func ParseCacheControl(s string) CacheControl {
	cc := CacheControl{
		MaxAge: Unset, SMaxAge: Unset,
		StaleWhileRevalidate: Unset, StaleIfError: Unset,
		MaxStale: Unset, MinFresh: Unset,
	}
	for s != "" {
		var name string
		var a arg
		name, a, s = nextDirective(s)
		cc.apply(name, a)
	}
	return cc
}

// arg is a directive's argument as written.
type arg struct {
	raw     string // the token, or the quoted-string with its quotes
	present bool   // the directive had "="
	ok      bool   // raw is exactly one token or one terminated quoted-string
}

// nextDirective splits the first directive off s: name [ "=" ( token / quoted-string ) ],
// tolerating whitespace around "=" and the element. rest starts after the comma that ends it.
func nextDirective(s string) (name string, a arg, rest string) {
	i := 0
	for i < len(s) && s[i] != ',' && s[i] != '=' {
		i++
	}
	name = trimOWS(s[:i])
	if i < len(s) && s[i] == '=' {
		a.present = true
		i++
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		start := i
		if i < len(s) && s[i] == '"' {
			n := quotedLen(s[i:])
			if n < 0 { // unterminated: the quoted-string runs to the end
				a.raw = s[start:]
				return name, a, ""
			}
			i += n
			a.raw = s[start:i]
			tail := i
			for i < len(s) && s[i] != ',' {
				i++
			}
			a.ok = trimOWS(s[tail:i]) == ""
		} else {
			for i < len(s) && s[i] != ',' {
				i++
			}
			a.raw = trimOWS(s[start:i])
			a.ok = isToken(a.raw)
		}
	}
	if i < len(s) {
		i++ // the comma
	}
	return name, a, s[i:]
}

// quotedLen returns the length of the quoted-string at the start of s (s[0] == '"'),
// closing quote included, or -1 if it is not terminated.
func quotedLen(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // quoted-pair
		case '"':
			return i + 1
		}
	}
	return -1
}

// value returns the argument with quotes and quoted-pairs removed; false if it is absent or malformed.
func (a arg) value() (string, bool) {
	if !a.present || !a.ok {
		return "", false
	}
	if a.raw[0] != '"' {
		return a.raw, true
	}
	v := a.raw[1 : len(a.raw)-1]
	if strings.IndexByte(v, '\\') < 0 {
		return v, true
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String(), true
}

// delta returns the argument as delta-seconds (RFC 9111 §1.2.2); false if absent or malformed.
func (a arg) delta() (time.Duration, bool) {
	v, ok := a.value()
	if !ok {
		return 0, false
	}
	return parseDelta(v)
}

// parseDelta parses 1*DIGIT seconds, capping at 2^31 s.
func parseDelta(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= maxDeltaSeconds { // stops growing once over the cap, so it cannot overflow
			n = n*10 + int64(c-'0')
		}
	}
	return time.Duration(min(n, maxDeltaSeconds)) * time.Second, true
}

type directive uint8

const (
	unknown directive = iota
	noStore
	noCache
	private
	public
	mustRevalidate
	proxyRevalidate
	noTransform
	immutable
	onlyIfCached
	maxAge
	sMaxAge
	staleWhileRevalidate
	staleIfError
	maxStale
	minFresh
	mustUnderstand
)

var directives = [...]struct {
	name string
	d    directive
}{
	{"max-age", maxAge},
	{"s-maxage", sMaxAge},
	{"public", public},
	{"private", private},
	{"no-cache", noCache},
	{"no-store", noStore},
	{"stale-while-revalidate", staleWhileRevalidate},
	{"stale-if-error", staleIfError},
	{"must-revalidate", mustRevalidate},
	{"proxy-revalidate", proxyRevalidate},
	{"immutable", immutable},
	{"no-transform", noTransform},
	{"only-if-cached", onlyIfCached},
	{"max-stale", maxStale},
	{"min-fresh", minFresh},
	{"must-understand", mustUnderstand},
}

// lookup returns the directive named name, in any ASCII case.
func lookup(name string) directive {
	for _, e := range directives {
		if EqualFoldASCII(name, e.name) {
			return e.d
		}
	}
	return unknown
}

func (cc *CacheControl) apply(name string, a arg) {
	switch lookup(name) {
	case noStore:
		cc.NoStore = true
	case noCache:
		var ok bool
		if cc.NoCacheFields, ok = appendFieldNames(cc.NoCacheFields, a); !ok {
			cc.NoCache = true
		}
	case private:
		var ok bool
		if cc.PrivateFields, ok = appendFieldNames(cc.PrivateFields, a); !ok {
			cc.Private = true
		}
	case public:
		cc.Public = cc.Public || !a.present
	case mustRevalidate:
		cc.MustRevalidate = true
	case proxyRevalidate:
		cc.ProxyRevalidate = true
	case noTransform:
		cc.NoTransform = true
	case immutable:
		cc.Immutable = cc.Immutable || !a.present
	case mustUnderstand:
		cc.MustUnderstand = cc.MustUnderstand || !a.present
	case onlyIfCached:
		cc.OnlyIfCached = true
	case maxAge:
		v, _ := a.delta() // malformed reads as 0
		cc.MaxAge = agree(cc.MaxAge, v)
	case sMaxAge:
		v, _ := a.delta()
		cc.SMaxAge = agree(cc.SMaxAge, v)
	case staleWhileRevalidate:
		if v, ok := a.delta(); ok {
			cc.StaleWhileRevalidate = smallest(cc.StaleWhileRevalidate, v)
		}
	case staleIfError:
		if v, ok := a.delta(); ok {
			cc.StaleIfError = smallest(cc.StaleIfError, v)
		}
	case maxStale:
		if !a.present {
			cc.MaxStale = smallest(cc.MaxStale, maxStaleAny)
		} else if v, ok := a.delta(); ok {
			cc.MaxStale = smallest(cc.MaxStale, v)
		}
	case minFresh:
		if v, ok := a.delta(); ok && v > cc.MinFresh {
			cc.MinFresh = v
		}
	}
}

// agree merges a repeated max-age or s-maxage: equal values stand, differing ones read as 0
// (RFC 9111 §4.2.1: use the first or consider the response stale; we take the safe side).
func agree(cur, v time.Duration) time.Duration {
	if cur != Unset && cur != v {
		return 0
	}
	return v
}

// smallest merges a repeated directive by keeping the smaller value.
func smallest(cur, v time.Duration) time.Duration {
	if cur == Unset || v < cur {
		return v
	}
	return cur
}

// appendFieldNames appends the canonical field names of a qualified no-cache or private
// argument (#field-name, RFC 9111 §5.2.2.4, §5.2.2.7) to dst, skipping names already there.
// It reports false, leaving dst as it was, when the argument is absent, malformed, names
// no field, or lists something that is not a field name: the caller then applies the
// unqualified directive.
func appendFieldNames(dst []string, a arg) ([]string, bool) {
	list, ok := a.value()
	if !ok {
		return dst, false
	}
	orig, named := dst, false
	for item := range strings.SplitSeq(list, ",") {
		item = trimOWS(item)
		if item == "" {
			continue // empty list elements are allowed (RFC 9110 §5.6.1.2)
		}
		if !isToken(item) {
			return orig, false
		}
		named = true
		if name := textproto.CanonicalMIMEHeaderKey(item); !slices.Contains(dst, name) {
			dst = append(dst, name)
		}
	}
	return dst, named
}
