package refresh

// The entries a fill stores: built from an origin response, or renewed by a 304.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/swrproxy/swrproxy/etag"
	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// renew applies an origin 304 to the stale entry (RFC 9111 §4.3.4): the stored header fields are
// updated with those of the 304, freshness restarts, the body stays. The revalidating request's
// Cookie does not matter here: the body was judged shareable when it was stored, and a 304 only
// confirms it.
//
// The policy's verdict (v, from judge, which edited h) applies as to a full response; the
// entry keeps its tags unless the 304 sends Surrogate-Key anew (RFC 9111 §4.3.4 updates only
// the fields the 304 carries, and the stored entry does not keep Surrogate-Key among them).
func (f *Filler) renew(ctx context.Context, r *fill.Request, h http.Header, v verdict, sent, received time.Time) (*fill.Result, error) {
	old := r.Stale
	merged := http.Header{}
	for _, fl := range old.Header {
		merged.Add(fl.Name, fl.Value)
	}
	if old.ETag != "" {
		merged.Set("Etag", old.ETag)
	}
	for name, vs := range h {
		if name == "Content-Length" || name == "Content-Encoding" && len(vs) == 0 {
			continue
		}
		merged[name] = vs
	}
	if h.Get("Date") == "" {
		merged.Del("Date") // newEntry dates it when received: the old Date would belie Age 0
	}
	d := httpcache.Decide(int(old.Status), merged, httpcache.Req{Authorization: r.Authorization, Policy: v.freshness}, sent, received, f.Defaults)
	if d.Store && v.noStore {
		d.Store, d.Reason = false, reasonPolicy
	}
	if !d.Store {
		// The origin no longer lets us keep it, but it did confirm the body: this request gets
		// the stored body with the 304's fields (RFC 9111 §4.3.4), relayed as an unstorable
		// response is, and the entry is dropped.
		if speaksForAll(r) {
			if err := f.Store.Delete(ctx, r.Key); err != nil {
				f.Log.Warn("cache delete failed", "key", r.Key, "err", err)
			}
		}
		merged.Del("Surrogate-Control")
		p := &fill.Pass{Status: int(old.Status), Header: merged, Body: io.NopCloser(bytes.NewReader(old.Body)),
			Length: int64(len(old.Body)), Reason: d.Reason}
		return &fill.Result{Pass: p, NotStored: d.Reason}, nil
	}
	f.stats.Revalidated.Add(1)
	e := newEntry(r, int(old.Status), merged, old.Body, d, received)
	e.OriginETag = old.OriginETag // a tag we computed stays ours, whatever the 304 carried
	e.Vary, e.VaryValues = old.Vary, old.VaryValues
	keepEncodings(e, old) // the body is old's, so are its codings
	if e.AnyEncoding && (httpcache.ParseCacheControl(strings.Join(merged.Values("Cache-Control"), ", ")).NoTransform || digested(merged)) {
		e.Encodings = nil // the 304 forbids what the codings are
	} else if e.AnyEncoding && len(e.Encodings) == 0 {
		f.compress(e, merged) // stored while every slot was busy (or before a type changed): compress it now
	}
	if len(h.Values("Surrogate-Key")) == 0 {
		e.Tags = slices.Clone(old.Tags)
	}
	e.Tags = addTags(e.Tags, v.tags)
	return f.put(ctx, e, &fill.Result{Entry: e, Revalidated: true})
}

// newEntry builds the entry stored for a response. The ETag is the origin's when well formed,
// else one computed from the body, the same on every instance.
func newEntry(r *fill.Request, status int, h http.Header, body []byte, d httpcache.Decision, received time.Time) *tiers.Entry {
	if h.Get("Date") == "" {
		h.Set("Date", received.UTC().Format(http.TimeFormat))
	}
	vary, _ := httpcache.VaryNames(h.Values("Vary"))
	// An identity body of a compressible type may be sent coded (by swrproxy or by the proxy
	// in front): every reply, identity and 304 too, says the representation depends on
	// Accept-Encoding (RFC 9110 §12.5.5), added once after the origin's Vary lines, or alone
	// when those are not stored (Cache-Control: no-cache="Vary" strips them).
	keepVary := !slices.Contains(d.StripHeaders, "Vary")
	varyCoding := httpcache.IdentityCompressible(h) && !(keepVary && slices.Contains(vary, "Accept-Encoding"))
	var stored []string
	for name := range h {
		if !skipStored(name) && !slices.Contains(d.StripHeaders, name) {
			stored = append(stored, name)
		}
	}
	if varyCoding && !slices.Contains(stored, "Vary") {
		stored = append(stored, "Vary")
	}
	slices.Sort(stored) // a stable order, so every instance stores the same bytes
	lines := func(name string) []string {
		if name == "Vary" && !keepVary {
			return nil
		}
		return h[name]
	}
	n := 0
	if varyCoding {
		n++
	}
	for _, name := range stored {
		n += len(lines(name))
	}
	// The fields are kept as long as the entry: allocated with it, no capacity to spare, and
	// the values that repeat from entry to entry (types, cache directives, dates, server names)
	// held once (tiers.StoredValues).
	e := tiers.NewEntry(n)
	for _, name := range stored {
		name := tiers.StoredValues.Of(name)
		for _, v := range lines(name) {
			e.Header = append(e.Header, tiers.Field{Name: name, Value: tiers.StoredValues.Of(v)})
		}
		if name == "Vary" && varyCoding {
			e.Header = append(e.Header, tiers.Field{Name: name, Value: "Accept-Encoding"})
		}
	}
	e.Key, e.Status, e.Body, e.Gen = r.Key, int32(status), body, r.Gen
	e.Stored, e.Age, e.Fresh = received, d.Age, d.Fresh
	e.StaleWhileRevalidate, e.StaleIfError, e.Guessed = d.StaleWhileRevalidate, d.StaleIfError, d.Guessed
	tag, ok := etag.Normalize(h.Get("Etag"))
	if !ok {
		tag = etag.Compute(body)
	}
	e.ETag, e.OriginETag = tag, ok
	e.ReqHeader = replayHeader(r.Header, r.Replay)
	if len(vary) > 0 {
		// The variant is what the origin was asked: the values the fill forwarded (a field it
		// did not forward counts as absent), normalised as lookups normalise the client's.
		e.Vary = vary
		e.VaryValues = make([]string, len(vary))
		for i, n := range vary {
			e.VaryValues[i] = httpcache.VaryValue(n, httpcache.JoinLines(n, r.Header.Values(n)))
		}
	}
	for _, v := range h.Values("Surrogate-Key") {
		e.Tags = append(e.Tags, strings.Fields(v)...)
	}
	return e
}

// replayHeader picks the request fields a background refresh of the entry sends again: the ones
// that shape an answer for everyone (content negotiation, user agent, scheme and, when keyed, host;
// the Vary'd fields are added from the entry itself). An allowlist: custom credentials, tokens,
// referers and trace ids of the client that happened to fill the entry are never kept or replayed.
//
// The values and the list are interned (tiers.ReplayValues): the entries filled by one kind of client
// share one copy of its User-Agent and Accept fields, and of the list, instead of holding one
// each (a list is allocated at its length and never modified).
func replayHeader(h http.Header, extra []string) *[]tiers.Field {
	names := append(replayFields[:len(replayFields):len(replayFields)], extra...)
	kept := func(i int, name string) bool {
		// a credential is never kept (entries are stored in Redis); a name listed twice once
		return i < len(replayFields) || !httpcache.IsCredential(name) && !slices.Contains(replayFields, name)
	}
	n, size := 0, 0
	for i, name := range names {
		if kept(i, name) {
			for _, v := range h[name] {
				if size += len(name) + len(v); size <= tiers.MaxReplayBytes {
					n++
				}
			}
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]tiers.Field, 0, n)
	for i, name := range names {
		if !kept(i, name) {
			continue
		}
		for _, v := range h[name] {
			if len(out) == n {
				return tiers.ReplayValues.List(out)
			}
			// Names too: a hook's extra names may be strings of a decoded entry's bytes, which
			// this entry, its refreshes and the interner would otherwise keep alive.
			out = append(out, tiers.Field{Name: tiers.ReplayValues.Of(name), Value: tiers.ReplayValues.Of(v)})
		}
	}
	return tiers.ReplayValues.List(out)
}

// replayFields are the request fields replayHeader keeps, in a stable order.
var replayFields = append(slices.Clone(httpcache.NegotiationFields), "X-Forwarded-Host", "X-Forwarded-Proto")

// skipStored reports whether a response field is not stored with the entry: ones the proxy sets
// itself on every reply, framing fields, and Surrogate-Key (kept as the entry's tags).
// Surrogate-Control is stored, so that a 304 that does not repeat it renews the entry under the
// same instructions (RFC 9111 §4.3.4), and is never written to clients (proxy's addField).
func skipStored(name string) bool {
	switch name {
	case "Age", "Etag", "Content-Length", "Surrogate-Key", "X-Cache", "Cache-Status":
		return true
	}
	return upstream.IsHopByHop(name)
}
