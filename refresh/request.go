package refresh

// The requests background jobs send: rebuilt from what an entry keeps.

import (
	"net/http"
	"slices"
	"strings"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/policy"
	"github.com/swrproxy/swrproxy/tiers"
)

// varyValue returns the Value function of a request whose fields named names have values.
func varyValue(names, values []string) func(string) string {
	return func(name string) string {
		for i, n := range names {
			if n == name {
				return values[i]
			}
		}
		return ""
	}
}

// requestFor builds the background request that refreshes entry e (stored under object
// generation gen): its target, the request fields of the fill that e keeps for replay, the values
// of the headers it varies on, and e's validators. It never sets a credential field (Cookie,
// Authorization, Proxy-Authorization), except the cookies a policy rule keys on, which the key
// holds (include_cookies refuses credential-like names): a variant keyed on one (httpcache.KeyedOnCredentials)
// cannot be asked for again, so callers do not refresh it; were they to, the request is the
// anonymous one (Value "" for credential fields, no Stale), which fills the anonymous variant.
// The request refers to e only through Stale. The target and the keyed fields come from the key
// (see policy.KeyFields); the Filler applies the policy to it when it runs (Matched is false).
func requestFor(e *tiers.Entry, gen uint64) *fill.Request {
	k := policy.ParseKey(e.Key)
	host, uri, lines := k.Host, k.Target, k.Lines
	hdr := http.Header{}
	var replay []string // the fields beyond replayFields (a hook's): kept again by the refreshed entry
	for _, f := range e.Replayed() {
		if !httpcache.IsCredential(f.Name) {
			hdr.Add(f.Name, f.Value)
			if !slices.Contains(replayFields, f.Name) && !slices.Contains(replay, f.Name) {
				replay = append(replay, f.Name)
			}
		}
	}
	// The fields and cookies a policy rule keyed the entry on: the key holds them, so asking
	// with them again fetches the same variant (and tells no secret: credentials are never keyed).
	keyed, cookies := policy.KeyFields(lines)
	for _, p := range keyed {
		hdr.Set(p.Name, p.Value)
	}
	if len(cookies) > 0 {
		pairs := make([]string, len(cookies))
		for i, c := range cookies {
			pairs[i] = c.Name + "=" + c.Value
		}
		hdr.Set("Cookie", strings.Join(pairs, "; "))
	}
	names, values := e.Vary, e.VaryValues
	creds := httpcache.KeyedOnCredentials(names)
	if creds {
		values = make([]string, len(names))
		for i, name := range names {
			if !httpcache.IsCredential(name) {
				values[i] = e.VaryValues[i]
			}
		}
	}
	for i, name := range names {
		if v := values[i]; v != "" {
			hdr.Set(name, v)
		}
	}
	if host != "" {
		hdr.Set("X-Forwarded-Host", host)
	}
	r := &fill.Request{Key: e.Key, URI: uri, Header: hdr, Value: varyValue(names, values), Stale: e, Gen: gen, Replay: replay}
	if creds {
		r.Stale = nil
	}
	return r
}
