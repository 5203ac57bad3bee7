// Package refresh owns every trip to the origin for a cacheable key: miss fills, revalidation of
// stale entries, refresh-ahead of hot keys and refreshes ordered by invalidations. Each trip happens
// once: concurrent requests for a key in this process share one fetch (singleflight), and instances
// sharing a Redis share one fetch through a short Redis lock.
package refresh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/swrproxy/swrproxy/etag"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// Fetcher sends one request to the origin. *upstream.Client implements it.
type Fetcher interface {
	Do(ctx context.Context, r *upstream.Request) (*http.Response, error)
}

// Filler fetches cacheable keys from the origin, once per key across the process and the fleet.
// Its zero value is not usable; set every exported field. Safe for concurrent use.
type Filler struct {
	Store    *tiers.Store
	Origin   Fetcher
	Defaults httpcache.Defaults
	// MaxObjectBytes bounds a stored body; larger responses are streamed to the one client that asked.
	MaxObjectBytes int64
	// Timeout bounds one fill: waiting on the lock holder, the origin exchange and the store.
	Timeout time.Duration
	// LockTTL is how long a cross-instance fetch lock lives without renewal (default 5s): the time
	// other instances wait before taking over from a holder that died.
	LockTTL time.Duration
	Log     *slog.Logger
	// Stats, when set, counts what fills do.
	Stats *Stats
	// ObserveOrigin, when set, is told how long each origin exchange took to its headers.
	ObserveOrigin func(kind string, d time.Duration)

	flight singleflight.Group
	vary   varyMemo
}

// Stats counts the filler's work. Fields are read with Load.
type Stats struct {
	OriginRequests atomic.Int64 // requests sent to the origin
	OriginErrors   atomic.Int64 // origin failures: no response, broken body, 5xx
	Stored         atomic.Int64 // responses stored
	Revalidated    atomic.Int64 // 304 answers that renewed an entry
	SharedLocal    atomic.Int64 // callers served by another caller's fetch in this process
	SharedRemote   atomic.Int64 // fetches answered by another instance's fetch via Redis
}

// Forget makes the next Fill of key start a new fetch instead of joining one in flight: an
// invalidation landed, so what the running fetch brings may be old.
func (f *Filler) Forget(key string) {
	f.flight.Forget(key)
	f.flight.Forget(key + cookieFlight)
}

// errPanic wraps a panic recovered inside a fill, so one bad response cannot take the process down.
var errPanic = errors.New("refresh: panic during fill")

// Fill returns the response for r: collapsed with every concurrent Fill of the same key in this
// process, and with other instances through the Redis lock. The origin trip runs on a context
// detached from ctx (bounded by f.Timeout), so a caller that gives up does not fail the others;
// ctx only bounds this caller's wait. A Pass in the result that the caller claims must be closed.
func (f *Filler) Fill(ctx context.Context, r *tiers.Request) (*tiers.Result, error) {
	r = withVary(r, f.vary.names(r.Key)) // what the key's responses varied on lately, if the request lacks it
	res, err := f.fill(ctx, r, r.Key)
	if err == nil && res.Entry != nil {
		f.vary.learn(r.Key, res.Entry.Vary)
	}
	if err != nil || res.Entry == nil || res.Entry.Matches(r.Value) {
		return res, err
	}
	// The response varies on fields in which this request differs from the one fetched: the
	// fetch we joined filled another request's variant, or ours went without a field the origin
	// turned out to vary on (a fill forwards only the fields it knows to be keyed). Fetch ours,
	// with those fields, collapsed with the requests that want the same variant. Once.
	return f.fill(ctx, withVary(r, res.Entry.Vary), r.Key+"\x00"+variantID(res.Entry.Vary, r.Value))
}

// fill is one fetch of r: collapsed under flightKey, or alone for a request that must not share.
// Requests with Cookie collapse only with one another, in this process: their answer is often
// private and slow, and must not hold up the anonymous requests of a key (in process or, through
// the Redis lock, on other instances).
func (f *Filler) fill(ctx context.Context, r *tiers.Request, flightKey string) (*tiers.Result, error) {
	if r.Authorization || r.Alone {
		// Never share a response fetched with one client's credentials with another client.
		return f.safeFetch(context.WithoutCancel(ctx), r, false)
	}
	if r.Cookie {
		return f.join(ctx, flightKey+cookieFlight, r, false)
	}
	return f.join(ctx, flightKey, r, true)
}

// cookieFlight ends the flight key of requests with Cookie.
const cookieFlight = "\x00cookie"

// withVary returns r asking also for the fields names that r's client sent and r did not
// forward. Forwarding fields (X-Forwarded-*, …) are never taken from a client: swrproxy sets its
// own. A background request (Field nil) is returned as it is.
func withVary(r *tiers.Request, names []string) *tiers.Request {
	if r.Field == nil {
		return r
	}
	var hdr http.Header
	for _, n := range names {
		if r.Header.Get(n) != "" || httpcache.ForwardingField(n) {
			continue
		}
		if v := r.Field(n); v != "" {
			if hdr == nil {
				hdr = r.Header.Clone()
			}
			hdr.Set(n, v)
		}
	}
	if hdr == nil {
		return r
	}
	r2 := *r
	r2.Header = hdr
	return &r2
}

func variantID(names []string, value func(string) string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(0)
		b.WriteString(value(n))
		b.WriteByte(0)
	}
	return b.String()
}

func (f *Filler) join(ctx context.Context, flightKey string, r *tiers.Request, lock bool) (*tiers.Result, error) {
	var led atomic.Bool // only the caller whose function runs leads; singleflight marks every caller Shared
	ch := f.flight.DoChan(flightKey, func() (any, error) {
		led.Store(true)
		return f.safeFetch(context.WithoutCancel(ctx), r, lock)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		out := *res.Val.(*tiers.Result)
		if res.Shared && !led.Load() {
			out.Shared = true
			if f.Stats != nil {
				f.Stats.SharedLocal.Add(1)
			}
		}
		return &out, nil
	case <-ctx.Done():
		return nil, &upstream.Error{Target: r.URI, Err: ctx.Err()}
	}
}

// safeFetch is fetch with a panic turned into an error: one bad response must not take the
// process down.
func (f *Filler) safeFetch(ctx context.Context, r *tiers.Request, collapse bool) (res *tiers.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, &upstream.Error{Target: r.URI, Err: fmt.Errorf("%w: %v", errPanic, p)}
			f.Log.Error("panic in fill", "key", r.Key, "panic", p)
		}
	}()
	return f.fetch(ctx, r, collapse)
}

// fetch does the origin trip for r (taking the cross-instance lock when collapse is set) and
// stores what may be stored. It runs on a context detached from any client.
func (f *Filler) fetch(ctx context.Context, r *tiers.Request, collapse bool) (*tiers.Result, error) {
	// The timeout covers the whole exchange of a response we store; a response handed off for
	// streaming gets an idle timeout instead (see handOff).
	ctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(f.Timeout, cancel)
	handedOff := false
	defer func() {
		if !handedOff {
			timer.Stop()
			cancel()
		}
	}()
	handOff := func(resp *http.Response, body io.ReadCloser, reason string) *tiers.Result {
		handedOff = true
		timer.Stop()
		p := tiers.NewPass(r)
		p.Status, p.Header, p.Length, p.Reason = resp.StatusCode, resp.Header, resp.ContentLength, reason
		p.Body = upstream.IdleTimeout(body, f.Timeout, cancel)
		return &tiers.Result{Pass: p, NotStored: reason}
	}

	if collapse {
		lock, res, err := f.lockOrWait(ctx, r)
		if err != nil || res != nil {
			return res, err
		}
		defer lock.Unlock()
	}

	req := &upstream.Request{Method: http.MethodGet, URI: r.URI, Header: r.Header.Clone()}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if e := r.Stale; e != nil {
		// RFC 9111 §4.3.1: validate the stored response instead of asking for a new body. A tag we
		// computed means nothing to the origin, and would make it ignore If-Modified-Since.
		if e.OriginETag {
			req.Header.Set("If-None-Match", e.ETag)
		}
		if e.LastModified != "" {
			req.Header.Set("If-Modified-Since", e.LastModified)
		}
	}
	if f.Stats != nil {
		f.Stats.OriginRequests.Add(1)
	}
	sent := time.Now()
	resp, err := f.Origin.Do(ctx, req)
	if err != nil {
		f.originFailed()
		return nil, err
	}
	received := time.Now()
	if f.ObserveOrigin != nil {
		f.ObserveOrigin("fill", received.Sub(sent))
	}

	if resp.StatusCode == http.StatusNotModified && r.Stale != nil {
		resp.Body.Close()
		return f.renew(ctx, r, resp.Header, sent, received)
	}
	failing := httpcache.OriginFailing(resp.StatusCode)
	if failing {
		f.originFailed()
	}

	d := httpcache.Decide(resp.StatusCode, resp.Header, httpcache.Req{Authorization: r.Authorization, Cookie: r.Cookie}, sent, received, f.Defaults)
	if d.Store && resp.ContentLength > f.MaxObjectBytes {
		d.Store, d.Reason = false, "too-big"
	}
	if !d.Store {
		if failing && shareable(r, resp) {
			// An error page every waiter may send: read it here (it is small) instead of
			// making each waiter ask a struggling origin again.
			body, err := io.ReadAll(io.LimitReader(resp.Body, maxSharedError+1))
			if err != nil {
				resp.Body.Close()
				return nil, &upstream.Error{Target: r.URI, Err: fmt.Errorf("read error body: %w", err)}
			}
			if len(body) <= maxSharedError {
				resp.Body.Close()
				p := tiers.NewPass(r)
				p.Status, p.Header, p.Length, p.Reason, p.Shared = resp.StatusCode, resp.Header, int64(len(body)), d.Reason, body
				return &tiers.Result{Pass: p, NotStored: d.Reason}, nil
			}
			return handOff(resp, prepend(body, resp.Body), d.Reason), nil
		} else if r.Stale != nil && resp.StatusCode < 400 && (d.Reason == "no-store" || d.Reason == "private") && speaksForAll(r) {
			// The origin now forbids keeping this URL: drop what we have. (Any other unstorable
			// answer to a revalidation, e.g. a 403 for the refreshing request's headers, leaves
			// the good entry alone.)
			if err := f.Store.Delete(ctx, r.Key); err != nil {
				f.Log.Warn("cache delete failed", "key", r.Key, "err", err)
			}
		}
		return handOff(resp, resp.Body, d.Reason), nil
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, f.MaxObjectBytes+1))
	if err == nil && resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
		err = fmt.Errorf("body of %d bytes, Content-Length %d", len(body), resp.ContentLength)
	}
	if err != nil {
		// A body cut short is never stored, nor served as if whole.
		resp.Body.Close()
		f.originFailed()
		return nil, &upstream.Error{Target: r.URI, Err: fmt.Errorf("read body: %w", err)}
	}
	if int64(len(body)) > f.MaxObjectBytes {
		return handOff(resp, prepend(body, resp.Body), "too-big"), nil
	}
	resp.Body.Close()

	e := newEntry(r, resp.StatusCode, resp.Header, body, d, received)
	return f.store(ctx, e, &tiers.Result{Entry: e})
}

// speaksForAll reports whether the origin's answer to r says something about everyone who shares
// the entry: not when r carried Cookie or Authorization, to which an origin often answers no-store
// or private for that client alone (any client could otherwise delete a shared entry at will).
func speaksForAll(r *tiers.Request) bool { return !r.Cookie && !r.Authorization }

// maxSharedError bounds the error page that is read once and sent to every waiter.
const maxSharedError = 64 << 10

// shareable reports whether an origin error page may be sent to every request of the flight:
// nothing marks it private to the request it was fetched for.
func shareable(r *tiers.Request, resp *http.Response) bool {
	cc := httpcache.ParseCacheControl(strings.Join(resp.Header.Values("Cache-Control"), ", "))
	return !r.Authorization && !cc.Private && len(cc.PrivateFields) == 0 && resp.Header.Get("Set-Cookie") == "" &&
		resp.ContentLength <= maxSharedError
}

// prepend returns a body that reads head, then the rest of body; closing it closes body.
func prepend(head []byte, body io.ReadCloser) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), body), body}
}

func (f *Filler) originFailed() {
	if f.Stats != nil {
		f.Stats.OriginErrors.Add(1)
	}
}

// store writes e to the tiers. An invalidation that landed during the fetch wins: e is still
// served to the requests that waited for it, but not stored.
func (f *Filler) store(ctx context.Context, e *tiers.Entry, res *tiers.Result) (*tiers.Result, error) {
	err := f.Store.Set(ctx, e)
	switch {
	case errors.Is(err, tiers.ErrStale):
		res.NotStored = "invalidated"
	case err != nil:
		f.Log.Warn("cache store failed", "key", e.Key, "err", err)
		fallthrough
	default:
		if f.Stats != nil {
			f.Stats.Stored.Add(1)
		}
	}
	return res, nil
}

// renew applies an origin 304 to the stale entry (RFC 9111 §4.3.4): the stored header fields are
// updated with those of the 304, freshness restarts, the body stays. The revalidating request's
// Cookie does not matter here: the body was judged shareable when it was stored, and a 304 only
// confirms it.
func (f *Filler) renew(ctx context.Context, r *tiers.Request, h http.Header, sent, received time.Time) (*tiers.Result, error) {
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
	d := httpcache.Decide(old.Status, merged, httpcache.Req{Authorization: r.Authorization}, sent, received, f.Defaults)
	if !d.Store {
		// The origin no longer lets us keep it: drop the entry, and let this caller fetch anew.
		if speaksForAll(r) {
			if err := f.Store.Delete(ctx, r.Key); err != nil {
				f.Log.Warn("cache delete failed", "key", r.Key, "err", err)
			}
		}
		return nil, &upstream.Error{Target: r.URI, Err: fmt.Errorf("304 made the entry unstorable (%s)", d.Reason)}
	}
	if f.Stats != nil {
		f.Stats.Revalidated.Add(1)
	}
	e := newEntry(r, old.Status, merged, old.Body, d, received)
	e.OriginETag = old.OriginETag // a tag we computed stays ours, whatever the 304 carried
	e.Vary, e.VaryValues = old.Vary, old.VaryValues
	return f.store(ctx, e, &tiers.Result{Entry: e, Revalidated: true})
}

// newEntry builds the entry stored for a response. The ETag is the origin's when well formed,
// else one computed from the body, the same on every instance.
func newEntry(r *tiers.Request, status int, h http.Header, body []byte, d httpcache.Decision, received time.Time) *tiers.Entry {
	e := &tiers.Entry{
		Key:                  r.Key,
		Status:               status,
		Body:                 body,
		LastModified:         h.Get("Last-Modified"),
		Stored:               received,
		Age:                  d.Age,
		Fresh:                d.Fresh,
		StaleWhileRevalidate: d.StaleWhileRevalidate,
		StaleIfError:         d.StaleIfError,
		Guessed:              d.Guessed,
		Gen:                  r.Gen,
	}
	tag, ok := etag.Normalize(h.Get("Etag"))
	if !ok {
		tag = etag.Compute(body)
	}
	e.ETag, e.OriginETag = tag, ok
	e.ReqHeader = replayHeader(r.Header)
	names, _ := httpcache.VaryNames(h.Values("Vary"))
	if len(names) > 0 {
		// The variant is what the origin was asked: the values the fill forwarded (a field it
		// did not forward counts as absent), normalised as lookups normalise the client's.
		e.Vary = names
		e.VaryValues = make([]string, len(names))
		for i, n := range names {
			e.VaryValues[i] = httpcache.VaryValue(n, httpcache.JoinLines(n, r.Header.Values(n)))
		}
	}
	for _, v := range h.Values("Surrogate-Key") {
		e.Tags = append(e.Tags, strings.Fields(v)...)
	}
	if h.Get("Date") == "" {
		h.Set("Date", received.UTC().Format(http.TimeFormat))
	}
	names = names[:0:0]
	for name := range h {
		if !skipStored(name) && !slices.Contains(d.StripHeaders, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names) // a stable order, so every instance stores the same bytes
	for _, name := range names {
		for _, v := range h[name] {
			e.Header = append(e.Header, tiers.Field{Name: name, Value: v})
		}
	}
	return e
}

// maxReplay bounds the request fields kept per entry for background refreshes.
const maxReplay = 2 << 10

// replayHeader picks the request fields a background refresh of the entry sends again: the ones
// that shape an answer for everyone (content negotiation, user agent, scheme and, when keyed, host;
// the Vary'd fields are added from the entry itself). An allowlist: custom credentials, tokens,
// referers and trace ids of the client that happened to fill the entry are never kept or replayed.
func replayHeader(h http.Header) []tiers.Field {
	var out []tiers.Field
	size := 0
	for _, name := range replayFields {
		for _, v := range h[name] {
			if size += len(name) + len(v); size > maxReplay {
				return out
			}
			out = append(out, tiers.Field{Name: name, Value: v})
		}
	}
	return out
}

// replayFields are the request fields replayHeader keeps, in a stable order.
var replayFields = []string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "User-Agent",
	"X-Forwarded-Host", "X-Forwarded-Proto"}

// skipStored reports whether a response field is not stored with the entry: ones the proxy sets
// itself on every reply, framing fields, and the surrogate fields meant for caches only.
func skipStored(name string) bool {
	switch name {
	case "Age", "Etag", "Content-Length",
		"Surrogate-Key", "Surrogate-Control", "X-Cache", "Cache-Status":
		return true
	}
	return upstream.IsHopByHop(name)
}

// lockOrWait takes the cross-instance fetch lock of r.Key, or, while another instance holds it,
// waits for that instance's result to appear in L2. It returns the held lock (nil without Redis),
// or the other instance's result. When the holder finishes without storing what r needs, or dies
// (its lock expires), this instance tries to take the lock itself.
func (f *Filler) lockOrWait(ctx context.Context, r *tiers.Request) (*tiers.Lock, *tiers.Result, error) {
	ttl := f.LockTTL
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	since := time.Now().Add(-time.Second) // slack for the other instance's clock
	for {
		lock, ok, err := f.Store.TryLock(ctx, r.Key, ttl)
		if err != nil && !errors.Is(err, tiers.ErrL2Unavailable) {
			f.Log.Debug("fetch lock unavailable, fetching without it", "key", r.Key, "err", err)
		}
		if ok {
			// Another instance may have stored the key between our lookup and the lock.
			if res := f.fromL2(ctx, r, since); res != nil {
				lock.Unlock()
				return nil, res, nil
			}
			return lock, nil, nil
		}
		wait := 10 * time.Millisecond
		for {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, nil, &upstream.Error{Target: r.URI, Err: fmt.Errorf("waiting for another instance's fetch: %w", ctx.Err())}
			case <-t.C:
			}
			wait = min(wait*2, 80*time.Millisecond)
			if res := f.fromL2(ctx, r, since); res != nil {
				if f.Stats != nil {
					f.Stats.SharedRemote.Add(1)
				}
				return nil, res, nil
			}
			if !f.Store.Locked(ctx, r.Key) {
				break
			}
		}
	}
}

// fromL2 returns a result for r from L2 when another instance stored a usable variant since r's
// lookup (newer than r.Stale; for a miss, a fresh one or one stored since this instance began
// to wait), refreshing this instance's L1 with it.
func (f *Filler) fromL2(ctx context.Context, r *tiers.Request, since time.Time) *tiers.Result {
	o, err := f.Store.Reload(ctx, r.Key)
	if err != nil || o == nil {
		return nil
	}
	e := o.Variant(r.Value)
	switch {
	case e == nil, e.Gen < o.Gen, !e.Expires().After(time.Now()):
		return nil
	case r.Stale != nil && !e.Stored.After(r.Stale.Stored):
		return nil
	case r.Stale == nil && e.CurrentAge(time.Now()) >= e.Fresh && !e.Stored.After(since):
		return nil // kept only for revalidation: not an answer to a miss
	}
	return &tiers.Result{Entry: e, Shared: true}
}
