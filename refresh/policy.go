package refresh

// The policy (SWR_POLICY_FILE, the Wasm hooks) on the fill path: the rule of a request rebuilt
// from a key, and what the rule says of the origin's response.

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/policy"
	"github.com/swrproxy/swrproxy/policy/wasm"
)

// Policy gives the policy in force (*policy.Holder).
type Policy interface {
	Current() *policy.Policy
}

// reasonPolicy is why a response a policy says not to cache is not stored.
const reasonPolicy = "policy"

// route applies the policy in force to a request a background job rebuilt from a key (one the
// proxy built from a client's request is Matched already): the rule that matches it, as the
// proxy would match a GET of the key's target, and the rule's request actions. The rebuilt
// request carries only what the key records (the host under SWR_KEY_HOST, the keyed fields and
// cookies) and the fields the entry keeps for replay, so a match.header condition sees those alone
// (the load refuses match.header fields that are not keyed).
func (f *Filler) route(r *fill.Request) *fill.Request {
	if r.Matched || f.Policy == nil {
		return r
	}
	p := f.Policy.Current()
	if p == nil {
		return r
	}
	k := policy.ParseKey(r.Key)
	dec, ok := policy.DecodePath(k.Path) // as fasthttp's URI().Path(), which the proxy matches, decodes it
	if !ok {
		return r // stored before the policy: the proxy passes such a path through while one is in force
	}
	rule := p.Match(policy.Request{Method: []byte(http.MethodGet), Host: []byte(k.Host), Path: []byte(dec), Query: []byte(k.Query), Header: fields(r.Header)})
	out := *r
	out.Rule, out.Matched, out.Policy = rule, true, p
	if rule != nil {
		// the keyed cookies come from the key's lines (requestFor), before the rule's edits
		jar := []byte(httpcache.JoinLines("Cookie", r.Header.Values("Cookie")))
		out.Header = r.Header.Clone()
		rule.EditRequest(out.Header)
		out.Cookie = rule.FillCookies(out.Header, func(name string) []byte { return policy.Cookie(jar, name) })
	}
	return &out
}

// fields adapts http.Header to policy.Fields.
type fields http.Header

func (h fields) Peek(name string) []byte {
	if v := http.Header(h).Get(name); v != "" {
		return []byte(v)
	}
	return nil
}

// verdict is what the policy says of one origin response.
type verdict struct {
	freshness httpcache.Override
	noStore   bool     // cache: false
	tags      []string // added to the entry's Surrogate-Key tags
}

// judge applies the policy to the origin's response to r, editing h (before Decide, so that
// removing Set-Cookie or Cache-Control changes what is stored): first the rule's
// response_headers, then the on_response hook (which sees the edited fields) with its field
// edits. The verdict is what they say of freshness, storage and tags, the hook's word over the
// rule's; when the hook fails the response is not stored.
func judge(ctx context.Context, r *fill.Request, status int, h http.Header) verdict {
	rule := r.Rule
	rule.EditResponse(h)
	k := policy.ParseKey(r.Key)
	path, _ := policy.DecodePath(k.Path) // as the rules and on_request see it: {N} is a decoded segment
	v := verdict{freshness: rule.Freshness(), noStore: rule.Bypass(), tags: rule.Tags(path)}
	if !r.Policy.HasResponseHook() {
		return v
	}
	out, ok := r.Policy.OnResponse(ctx, &wasm.ResponseIn{Status: status, Method: []byte(http.MethodGet), Host: []byte(k.Host),
		Path: []byte(path), Query: []byte(k.Query), Header: wasm.HTTPHeader(h)})
	if !ok {
		// The hook might have said cache: false (a private answer): without its word the
		// response is served to the request that fetched it and not stored.
		v.noStore = true
		return v
	}
	policy.EditFields(h, out.Set, out.Remove)
	for _, o := range []struct{ from, to **time.Duration }{
		{&out.TTL, &v.freshness.TTL}, {&out.StaleWhileRevalidate, &v.freshness.StaleWhileRevalidate}, {&out.StaleIfError, &v.freshness.StaleIfError},
	} {
		if *o.from != nil {
			*o.to = *o.from
		}
	}
	v.noStore = v.noStore || out.NoStore
	v.tags = addTags(v.tags, out.Tags)
	return v
}

// addTags appends to tags those of extra it does not hold.
func addTags(tags, extra []string) []string {
	for _, t := range extra {
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	return tags
}
