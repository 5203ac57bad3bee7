// Package policy owns the rules file named by SWR_POLICY_FILE: it parses and validates the YAML,
// compiles each rule's match conditions, and answers, for a request, which rule applies and how
// that rule builds the cache key and the tags.
//
// # First match wins
//
// Rules are ordered. [Rules.Match] returns the first rule whose match conditions all hold, and
// no later rule is looked at, so put specific rules before general ones: a rule with an empty
// (or absent) match matches every request and ends the list in practice. A request no rule
// matches gets nil, meaning "no policy: the origin's headers and the environment's defaults
// decide".
//
// # Globs
//
// match.path and key.ignore_query take globs. In a path glob "*" matches any run of characters
// except "/" (possibly none), "**" any run including "/", and every other character itself, so
// "/api/*/price" matches "/api/v1/price" but not "/api/v1/x/price", and "/static/**" matches
// "/static/a/b.css" (but not "/static": the "/" is literal). The whole path must match; use a
// trailing "**" or match.path_prefix for "starts with". There are no "?", classes or escapes. In
// ignore_query "*" and "**" are the same: a query parameter name has no segments.
//
// Matching and key building are built for the hit path: neither allocates, globs are compiled to
// a small automaton (no regexp), and query strings are read in place.
package policy

import (
	"fmt"
	"time"
)

// Limits on what a rules file may hold, so a mistaken or hostile file cannot make loading or
// matching expensive.
const (
	MaxFileSize = 1 << 20 // bytes
	MaxRules    = 1000
)

// Rules is a compiled rules file. It is immutable after Parse and safe for concurrent use.
type Rules struct {
	file  string
	rules []*Rule
}

// Warnings returns what is allowed in the rules but probably not meant, one line each with the
// file, line and field (the holder logs them at every load).
func (r *Rules) Warnings() []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, rule := range r.rules {
		// A ttl is the operator's explicit word, which lets a response to a request with Cookie
		// be stored and shared (as the origin's max-age does): say so when the rule lets cookies
		// reach the origin without keying on them.
		if rule.TTL != nil && !rule.Bypass() && rule.forwardsUnkeyedCookies() {
			out = append(out, fmt.Sprintf("%s:%d: rules[%d].ttl: responses to requests with cookies are stored and shared for the ttl, and the cookies reach the origin; "+
				"if the origin's answer depends on them, add strip_cookies: true or key.include_cookies", r.file, rule.Line, rule.Index))
		}
	}
	return out
}

// File returns the name the rules were parsed under (the path given to Load).
func (r *Rules) File() string { return r.file }

// All returns the rules in file order. The slice is a copy; the rules are shared and must not be
// modified.
func (r *Rules) All() []*Rule {
	if r == nil {
		return nil
	}
	return append([]*Rule(nil), r.rules...)
}

// Rule is one compiled rule: its match conditions and the actions it applies. The exported
// fields are what the file said (a nil pointer means "not given": the proxy's default applies);
// they are for reading only, and changing them does not change matching or key building.
type Rule struct {
	Name  string // the rule's name, or "" when the file gave none
	Index int    // the rule's position in the file, from 0
	Line  int    // the line of the rule in the file

	Match Match // the conditions as written

	TTL                  *time.Duration // overrides the origin's freshness
	DefaultTTL           *time.Duration // freshness when the origin gives none
	StaleWhileRevalidate *time.Duration // RFC 5861 window, overriding the origin's
	StaleIfError         *time.Duration // RFC 5861 window, overriding the origin's
	Cache                *bool          // false: bypass (streamed, never stored)
	RefreshAhead         *bool          // refresh shortly before the entry goes stale

	Key Key // how the cache key is built

	RequestHeaders  HeaderEdits // applied to the request sent to the origin
	ResponseHeaders HeaderEdits // applied to the origin's response, before it is stored or streamed
	StripCookies    bool        // drop the Cookie header before the origin sees it
	KeepCookies     []string    // drop every cookie but these (exclusive with StripCookies)

	TagTemplates []string // tag templates as written; see Tags

	match matcher
	key   keyPlan
	tags  []tagTemplate
}

// Match is a rule's match conditions as written. Every given condition must hold.
type Match struct {
	Methods    []string // the request method is one of these (case-sensitive, RFC 9110 §9.1)
	Path       string   // glob over the whole path
	PathPrefix string   // the path starts with this
	Host       string   // the Host, compared case-insensitively and without a port
	Header     []Pair   // each header is present (Value "*") or has exactly Value
	Query      []Pair   // each query parameter is present (Value "*") or has exactly Value (decoded)
}

// Pair is a name and a value, in file order.
type Pair struct {
	Name, Value string
}

// Key is how a rule builds the cache key; see [Rule.AppendKey].
type Key struct {
	IgnoreQuery         []string // globs over query parameter names to leave out of the key
	SortQuery           bool     // order the remaining parameters, so their order does not matter
	IncludeHeaders      []string // request headers whose values become part of the key
	IncludeCookies      []string // cookies whose values become part of the key
	CaseInsensitivePath bool     // fold ASCII letters in the path to lower case
}

// HeaderEdits is a set of header changes: Remove first, then Set (replacing any value).
type HeaderEdits struct {
	Set    []Pair   // in file order
	Remove []string // header names
}

// forwardsUnkeyedCookies reports whether a fill under the rule may send a cookie the key does
// not hold: keep_cookies names some, or the rule neither strips cookies nor keys on them (then
// every cookie is sent).
func (rule *Rule) forwardsUnkeyedCookies() bool {
	switch {
	case rule.StripCookies:
		return false
	case rule.KeepCookies != nil:
		return len(rule.KeepCookies) > 0
	}
	return len(rule.key.cookies) == 0
}
