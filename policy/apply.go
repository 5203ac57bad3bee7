package policy

// What a rule does to the requests and responses it applies to, besides the key.

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/swrproxy/swrproxy/httpcache"
)

// Freshness returns what the rule says of a response's lifetime and stale windows, for
// httpcache.Decide; a nil rule says nothing.
func (rule *Rule) Freshness() httpcache.Override {
	if rule == nil {
		return httpcache.Override{}
	}
	return httpcache.Override{TTL: rule.TTL, DefaultTTL: rule.DefaultTTL, StaleWhileRevalidate: rule.StaleWhileRevalidate, StaleIfError: rule.StaleIfError}
}

// Bypass reports whether the rule says cache: false (the request is passed through, streamed,
// never stored).
func (rule *Rule) Bypass() bool { return rule != nil && rule.Cache != nil && !*rule.Cache }

// RefreshesAhead reports whether keys under the rule are refreshed shortly before they go stale
// when hot (true unless the rule says refresh_ahead: false).
func (rule *Rule) RefreshesAhead() bool {
	return rule == nil || rule.RefreshAhead == nil || *rule.RefreshAhead
}

// EditRequest applies the rule's request actions to the fields h sends to the origin: first
// strip_cookies or keep_cookies, then request_headers (remove, then set). A nil rule does nothing.
func (rule *Rule) EditRequest(h http.Header) {
	if rule == nil {
		return
	}
	switch {
	case rule.StripCookies:
		h.Del("Cookie")
	case rule.KeepCookies != nil:
		keepCookies(h, rule.KeepCookies)
	}
	rule.RequestHeaders.Apply(h)
}

// EditResponse applies the rule's response_headers to an origin response's fields (before
// swrproxy decides whether to store it, so that removing Set-Cookie or Cache-Control changes
// that decision). A nil rule does nothing.
func (rule *Rule) EditResponse(h http.Header) {
	if rule != nil {
		rule.ResponseHeaders.Apply(h)
	}
}

// Apply removes the fields of e.Remove, then sets those of e.Set (replacing any value).
func (e HeaderEdits) Apply(h http.Header) {
	for _, name := range e.Remove {
		h.Del(name)
	}
	for _, p := range e.Set {
		h.Set(p.Name, p.Value)
	}
}

// FillCookies sets the Cookie of a cacheable fill's fields h under the rule, after EditRequest.
// When the rule keys on cookies (key.include_cookies), the fill sends exactly the keyed cookies,
// each once with the value keyed gives (the one the key records: a client's duplicate or second
// Cookie line cannot reach the origin behind the key's back, and strip_cookies or keep_cookies do
// not remove them), followed by the cookies keep_cookies kept; any other cookie of whichever
// client filled the entry is dropped, so it cannot shape what everyone with the same keyed values
// is served. It reports whether h carries a cookie that is not part of the key, which makes the
// fill a request with Cookie (httpcache.Req.Cookie).
func (rule *Rule) FillCookies(h http.Header, keyed func(name string) []byte) (unkeyed bool) {
	if rule == nil || len(rule.key.cookies) == 0 {
		return h.Get("Cookie") != ""
	}
	var pairs []string
	for _, name := range rule.key.cookies {
		if v := keyed(name); v != nil {
			pairs = append(pairs, name+"="+string(v))
		}
	}
	if len(rule.KeepCookies) > 0 {
		for _, v := range h.Values("Cookie") {
			cookiePairs([]byte(v), func(name, _, pair []byte) bool {
				if !hasName(rule.key.cookies, name) && hasName(rule.KeepCookies, name) {
					pairs, unkeyed = append(pairs, string(pair)), true
				}
				return true
			})
		}
	}
	if len(pairs) == 0 {
		h.Del("Cookie")
	} else {
		h.Set("Cookie", strings.Join(pairs, "; "))
	}
	return unkeyed
}

// UnkeyedCookies reports what FillCookies would, for a request whose Cookie field has the lines
// given (as they came, before EditRequest): whether its fill would carry a cookie that is not part
// of the key. It does not allocate (the hit path asks it of entries with heuristic freshness).
func (rule *Rule) UnkeyedCookies(lines [][]byte) bool {
	if rule == nil || !rule.StripCookies && rule.KeepCookies == nil && len(rule.key.cookies) == 0 {
		for _, line := range lines {
			if len(line) > 0 {
				return true // sent as it came
			}
		}
		return false
	}
	if rule.StripCookies || rule.KeepCookies == nil {
		return false // only the keyed ones are sent
	}
	unkeyed := false
	for _, line := range lines {
		cookiePairs(line, func(name, _, _ []byte) bool {
			unkeyed = !hasName(rule.key.cookies, name) && hasName(rule.KeepCookies, name)
			return !unkeyed
		})
		if unkeyed {
			return true
		}
	}
	return false
}

// hasName reports whether list holds name. It does not allocate.
func hasName(list []string, name []byte) bool {
	for _, s := range list {
		if s == string(name) {
			return true
		}
	}
	return false
}

// keepCookies rewrites the Cookie field of h (every line of it, as one line) to hold only the
// cookies named in keep, in their order of arrival; none left removes the field.
func keepCookies(h http.Header, keep []string) {
	var kept []string
	for _, v := range h.Values("Cookie") {
		cookiePairs([]byte(v), func(name, _, pair []byte) bool {
			if hasName(keep, name) {
				kept = append(kept, string(pair))
			}
			return true
		})
	}
	if len(kept) == 0 {
		h.Del("Cookie")
		return
	}
	h.Set("Cookie", strings.Join(kept, "; "))
}

// Cookie returns the value of the cookie name in a Cookie field value, its first occurrence, or
// nil when it is absent or empty (a key records both alike, and a fill sends neither). It does
// not allocate.
func Cookie(field []byte, name string) []byte {
	var found []byte
	cookiePairs(field, func(n, v, _ []byte) bool {
		if string(n) == name {
			found = v
			return false
		}
		return true
	})
	return found
}

// cookiePairs calls f with each cookie of a Cookie field value in order (RFC 6265 §5.4: pairs
// separated by ";"): its name and value, each trimmed of spaces and tabs, and the pair as
// written, trimmed; empty pairs and pairs without a name are skipped. f returns false to stop.
// It is the one reader of Cookie fields in this package, so the key, the fill and the checks of
// what a fill sends always agree. It does not allocate.
func cookiePairs(field []byte, f func(name, value, pair []byte) bool) {
	for len(field) > 0 {
		var pair []byte
		pair, field = cut(field, ';')
		pair = bytes.Trim(pair, " \t")
		name, value := cut(pair, '=')
		if name = bytes.TrimRight(name, " \t"); len(name) == 0 {
			continue
		}
		if value = bytes.TrimLeft(value, " \t"); len(value) == 0 {
			value = nil
		}
		if !f(name, value, pair) {
			return
		}
	}
}

// UsesHost reports whether a rule that stores responses matches on the host (match.host), which
// is only sound when the host is part of the cache key (SWR_KEY_HOST): otherwise requests for
// different hosts share an entry while different rules apply to them. A cache: false rule
// stores nothing, so it may.
func (r *Rules) UsesHost() (*Rule, bool) {
	if r == nil {
		return nil, false
	}
	for _, rule := range r.rules {
		if rule.match.host != "" && !rule.Bypass() {
			return rule, true
		}
	}
	return nil, false
}
