// Package refresh owns every trip to the origin for a cacheable key: miss fills, revalidation of
// stale entries, refresh-ahead of hot keys and refreshes ordered by invalidations. Each trip happens
// once: concurrent requests for a key in this process share one fetch (singleflight), and instances
// sharing a Redis share one fetch through a short Redis lock. It also owns who gets a response
// that is not stored: only the request it was fetched for streams it; the other waiters of the
// flight get their own, and background jobs close what they fetched.
package refresh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// Fetcher sends one request to the origin. *upstream.Client implements it.
type Fetcher interface {
	Do(ctx context.Context, r *upstream.Request) (*http.Response, error)
}

// Filler fetches cacheable keys from the origin, once per key across the process and the fleet.
// Its zero value is not usable: refresh.New builds one (tests set the fields: Store, Origin,
// MaxObjectBytes, Timeout and Log are needed; LockTTL has a default, ObserveOrigin is optional).
// Safe for concurrent use.
type Filler struct {
	Store    Store
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
	// ObserveOrigin, when set, is told how long each origin exchange took to its headers.
	ObserveOrigin func(kind string, d time.Duration)
	// Policy, when set, is the policy in force (SWR_POLICY_FILE, the Wasm hooks).
	Policy Policy
	// Compress, when on, makes fills ask for the identity form and stores compressible bodies
	// encoded too (SWR_COMPRESS, compress.go).
	Compress Compression

	stats         fillCounters // Stats reads them
	compressStats compressCounters
	flight        singleflight.Group
	vary          varyMemo
	encodes       encodesMemo // keys whose origin encodes whatever a fill asks (compress.go)
	slotsOnce     sync.Once
	slots         chan struct{} // compressSlots
	failing       failingMarks
}

// fillCounters count the filler's work.
type fillCounters struct {
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
	f.failing.forget(key)
	f.flight.Forget(key)
	f.flight.Forget(key + cookieFlight)
}

// Fill returns the response for r, a client's request: collapsed with every concurrent fill of
// the same key in this process, and with other instances through the Redis lock. The origin trip
// runs on a context detached from ctx (bounded by f.Timeout), so a caller that gives up does not
// fail the others; ctx only bounds this caller's wait.
//
// A Pass in the result was fetched for r: the caller must stream or close its Body. When the
// flight r joined brought a response that may not be stored, fetched for the request that led
// the flight (it may be private to that one), Fill fetches r alone; so it does for a request with
// Authorization, and for one with Cookie that would get a lifetime swrproxy guessed (Result.Bypass
// says which rule). The exception is the origin failing with such a response while r.Stale may be
// served on error (RFC 5861 §4): then Fill returns an error rather than ask a failing origin again,
// and so it does when another request's fetch stored an origin failure (see keepStale).
//
// Errors are *upstream.Error when the origin failed or this caller's wait on the flight ended;
// otherwise they say what failed (a panic in the fill, the wait for another instance's fetch, a
// 304 that made the entry unstorable, the origin failing for another request), and those that
// can time out have a Timeout method.
func (f *Filler) Fill(ctx context.Context, r *fill.Request) (*fill.Result, error) {
	switch {
	case r.Authorization:
		// RFC 9111 §3.5: never share a response fetched with one client's credentials.
		return f.alone(ctx, r, "authorization")
	case r.Cookie && r.Stale != nil && r.Stale.Guessed:
		// The stored copy's lifetime is a guess, not the origin's word for requests with
		// Cookie: ask for this client alone, conditionally; a 304 confirms the copy.
		return f.alone(ctx, r, "cookie")
	}
	res, led, err := f.load(ctx, r, true)
	if err == nil && streams(res) && !led && res.NotStored == reasonEncoded {
		// Another request's identity fill taught the memo that this origin encodes whatever it
		// is asked: join the fill of r's own coding (collapsed with the others asking for it).
		res, led, err = f.load(ctx, r, true)
	}
	switch {
	case err != nil:
		return nil, err
	case streams(res) && !led:
		// Fetched for the request that led the flight, and maybe private to it.
		if httpcache.OriginFailing(res.Pass.Status) && r.Stale != nil && r.Stale.UsableOnError(time.Now()) {
			return nil, fmt.Errorf("refresh: fill %q: %w (status %d)", r.Key, errFailedForAnother, res.Pass.Status)
		}
		return f.alone(ctx, r, "")
	case res.Entry != nil && res.Shared && keepStale(int(res.Entry.Status), r.Stale, time.Now()):
		// Another request's fetch stored an origin failure (it had no good copy to keep): r's
		// good copy may be served in its place (RFC 5861 §4).
		return nil, fmt.Errorf("refresh: fill %q: %w (status %d, stored)", r.Key, errFailedForAnother, res.Entry.Status)
	case res.Entry != nil && res.Shared && res.Entry.Guessed && r.Cookie:
		// Another request's fetch, with a guessed lifetime: not for a request with Cookie.
		return f.alone(ctx, r, "cookie")
	}
	return res, nil
}

// alone is a fill of r for itself only, collapsed with no other request; bypass says why.
func (f *Filler) alone(ctx context.Context, r *fill.Request, bypass string) (*fill.Result, error) {
	res, _, err := f.load(ctx, r, false)
	if err != nil {
		return nil, err
	}
	out := *res
	out.Bypass = bypass
	return &out, nil
}

// background fills r for nobody (a refresh job), collapsed as a client's fill is. A Pass it
// fetched is closed here; one fetched for the client request that led the flight is left to it.
// It returns the entry the fill brought (not stored if an invalidation landed meanwhile), nil
// for a response that may not be stored.
func (f *Filler) background(ctx context.Context, r *fill.Request) (*tiers.Entry, error) {
	r = f.route(r)
	res, led, err := f.load(ctx, r, true)
	if err != nil {
		return nil, err
	}
	if streams(res) && led {
		res.Pass.Body.Close()
	}
	return res.Entry, nil
}

// streams reports whether res holds a body to stream (a Pass that is not a shared error page).
func streams(res *fill.Result) bool { return res != nil && res.Pass != nil && res.Pass.Body != nil }

// load fills r, collapsed with other requests or not, asking also for what the key's responses
// varied on lately. When the response varies on fields in which r differs from the request
// fetched, it fills r's own variant, once. led reports whether the result was fetched for r (r
// led its flight or went alone), so that a Pass in it is r's.
//
// When the origin's last answer for the key was an error it declared fresh, and r has a good
// copy to serve on error, the origin is not asked again before that error's lifetime ends.
func (f *Filler) load(ctx context.Context, r *fill.Request, collapse bool) (res *fill.Result, led bool, err error) {
	r = withVary(r, f.vary.names(r.Key)) // what the key's responses varied on lately, if the request lacks it
	asked, flightKey := r, r.Key
	if !f.encodes.holds(r.Key) {
		r = f.identityRequest(r) // with compression on, one identity fill serves every Accept-Encoding
	} else if f.Compress.on() {
		flightKey = r.Key + "\x00" + tiers.VariantID([]string{"Accept-Encoding"}, r.Value) // one fill per coding
	}
	// Checked on the request as it would be sent, as the mark was set on one that was sent.
	if now := time.Now(); goodOnError(r.Stale, now) && f.failing.holds(r.Key, r.Stale.VariantID()+markScope(r), now) {
		return nil, false, fmt.Errorf("refresh: fill %q: %w", r.Key, errStillFailing)
	}
	res, led, err = f.fill(ctx, r, flightKey, collapse)
	if err == nil && led && r != asked && res.NotStored == reasonEncoded {
		// The origin encoded its answer to an identity request and varies on Accept-Encoding:
		// it encodes whatever it is asked. Ask again as the client asked, and store that
		// variant keyed on its Accept-Encoding, as without compression (encodes remembers the
		// key, so later fills ask so at once).
		if streams(res) {
			res.Pass.Body.Close()
		}
		r = asked
		res, led, err = f.fill(ctx, r, r.Key+"\x00"+tiers.VariantID([]string{"Accept-Encoding"}, r.Value), collapse)
	}
	if err == nil && res.Entry != nil {
		f.vary.learn(r.Key, res.Entry.Vary)
	}
	if err != nil || res.Entry == nil || res.Entry.Matches(r.Value) {
		return res, led, err
	}
	// The response varies on fields in which this request differs from the one fetched: the
	// fetch we joined filled another request's variant, or ours went without a field the origin
	// turned out to vary on (a fill forwards only the fields it knows to be keyed). Fetch ours,
	// with those fields, collapsed with the requests that want the same variant. Once.
	return f.fill(ctx, withVary(r, res.Entry.Vary), r.Key+"\x00"+tiers.VariantID(res.Entry.Vary, r.Value), collapse)
}

// fill is one fetch of r: collapsed under flightKey, or alone (without collapse, and for a request
// with Authorization). Requests with Cookie collapse only with one another, in this process: their
// answer is often private and slow, and must not hold up the anonymous requests of a key (in
// process or, through the Redis lock, on other instances). led reports whether the fetch was r's.
func (f *Filler) fill(ctx context.Context, r *fill.Request, flightKey string, collapse bool) (res *fill.Result, led bool, err error) {
	if !collapse || r.Authorization {
		res, err := f.safeFetch(context.WithoutCancel(ctx), r, false)
		return res, true, err
	}
	if r.Cookie {
		return f.join(ctx, flightKey+cookieFlight, r, false)
	}
	return f.join(ctx, flightKey, r, true)
}

// safeFetch is fetch with a panic turned into an error: one bad response must not take the
// process down.
func (f *Filler) safeFetch(ctx context.Context, r *fill.Request, collapse bool) (res *fill.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("refresh: fill %q: %w: %v", r.Key, errPanic, p)
			f.Log.Error("panic in fill", "key", r.Key, "panic", p)
		}
	}()
	return f.fetch(ctx, r, collapse)
}

// fetch is one origin trip for r, on a context detached from any client: it takes the
// cross-instance lock when collapse is set (or returns what another instance stored meanwhile),
// asks the origin, and keeps the answer (answer: renew, store or relay). f.Timeout bounds the
// whole exchange of a response that is kept; a relayed body gets an idle timeout instead, so a
// long download that keeps moving is never cut.
func (f *Filler) fetch(ctx context.Context, r *fill.Request, collapse bool) (res *fill.Result, err error) {
	ctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(f.Timeout, cancel)
	defer timer.Stop()
	defer func() {
		if streams(res) {
			// The body outlives this call: closing it (or its idle timeout) ends the exchange.
			res.Pass.Body = upstream.IdleTimeout(res.Pass.Body, f.Timeout, cancel)
		} else {
			cancel()
		}
	}()
	if collapse {
		lock, res, err := f.lockOrWait(ctx, r)
		if err != nil || res != nil {
			return res, err
		}
		defer lock.Unlock()
	}
	epoch := f.failing.epoch() // an invalidation after this point outdates what the origin says
	resp, sent, received, err := f.ask(ctx, r)
	if err != nil {
		return nil, err
	}
	return f.answer(ctx, r, resp, sent, received, epoch)
}

// ask sends r to the origin, conditional on the validators of r.Stale, and returns the response
// with when the request was sent and when the response's headers arrived.
func (f *Filler) ask(ctx context.Context, r *fill.Request) (resp *http.Response, sent, received time.Time, err error) {
	req := &upstream.Request{Method: http.MethodGet, URI: r.URI, Key: r.Key, Header: r.Header.Clone()}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if e := r.Stale; e != nil {
		// RFC 9111 §4.3.1: validate the stored response instead of asking for a new body. A tag we
		// computed means nothing to the origin, and would make it ignore If-Modified-Since.
		if e.OriginETag {
			req.Header.Set("If-None-Match", e.ETag)
		}
		if lm := e.LastModified(); lm != "" {
			req.Header.Set("If-Modified-Since", lm)
		}
	}
	f.stats.OriginRequests.Add(1)
	sent = time.Now()
	resp, err = f.Origin.Do(ctx, req)
	if err != nil {
		if !errors.Is(err, upstream.ErrBudget) { // a full budget is ours, not the origin failing
			f.originFailed()
		}
		return nil, sent, sent, err
	}
	received = time.Now()
	if f.ObserveOrigin != nil {
		f.ObserveOrigin("fill", received.Sub(sent))
	}
	return resp, sent, received, nil
}

// answer keeps the origin's response to r: a 304 renews the stale entry, a storable response is
// stored (an error with explicit freshness too, unless keepStale keeps the good copy it would
// replace), and any other is relayed (a small error page read whole, for every waiter).
// epoch is the failing marks' epoch when the fetch began.
func (f *Filler) answer(ctx context.Context, r *fill.Request, resp *http.Response, sent, received time.Time, epoch uint64) (*fill.Result, error) {
	status := resp.StatusCode
	if status == http.StatusNotModified && r.Stale != nil {
		status = int(r.Stale.Status) // a revalidation is judged as the response it renews
	}
	v := judge(ctx, r, status, resp.Header)
	if resp.StatusCode == http.StatusNotModified && r.Stale != nil {
		resp.Body.Close()
		return f.renew(ctx, r, resp.Header, v, sent, received)
	}
	failing := httpcache.OriginFailing(resp.StatusCode)
	if failing {
		f.originFailed()
	}
	d := httpcache.Decide(resp.StatusCode, resp.Header, httpcache.Req{Authorization: r.Authorization, Cookie: r.Cookie, Policy: v.freshness}, sent, received, f.Defaults)
	switch {
	case d.Store && v.noStore:
		d.Store, d.Reason = false, reasonPolicy
	case d.Store && resp.ContentLength > f.MaxObjectBytes:
		d.Store, d.Reason = false, "too-big"
	case d.Store && f.unkeyableEncoding(r, resp.Header):
		d.Store, d.Reason = false, reasonEncoded
		if speaksForAll(r) {
			f.encodes.learn(r.Key) // not from a Cookie or Authorization fill: only for everyone
		}
	case d.Store && keepStale(resp.StatusCode, r.Stale, received):
		d.Store, d.Reason = false, reasonStaleKept
		if markable(r, resp, d) {
			f.failing.mark(r.Key, r.Stale.VariantID()+markScope(r), received.Add(d.Fresh), epoch)
		}
	}
	if d.Store {
		return f.store(ctx, r, resp, d, v.tags, received)
	}
	if failing && shareable(r, resp) {
		return relayShared(r, resp, d.Reason)
	}
	if r.Stale != nil && resp.StatusCode < 400 && (d.Reason == "no-store" || d.Reason == "private") && speaksForAll(r) {
		// The origin now forbids keeping this URL: drop what we have. (Any other unstorable
		// answer to a revalidation, e.g. a 403 for the refreshing request's headers, leaves
		// the good entry alone.)
		if err := f.Store.Delete(ctx, r.Key); err != nil {
			f.Log.Warn("cache delete failed", "key", r.Key, "err", err)
		}
	}
	return relay(resp, resp.Body, d.Reason), nil
}

// store reads the body of a storable response and stores the entry. A body cut short is an
// error (never stored, nor served as if whole); one larger than MaxObjectBytes is relayed.
func (f *Filler) store(ctx context.Context, r *fill.Request, resp *http.Response, d httpcache.Decision, tags []string, received time.Time) (*fill.Result, error) {
	body, err := readBody(resp.Body, resp.ContentLength, f.MaxObjectBytes)
	if err == nil && resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength {
		err = fmt.Errorf("body of %d bytes, Content-Length %d", len(body), resp.ContentLength)
	}
	if err != nil {
		resp.Body.Close()
		f.originFailed()
		return nil, &upstream.Error{Target: r.URI, Err: fmt.Errorf("read body: %w", err)}
	}
	if int64(len(body)) > f.MaxObjectBytes {
		return relay(resp, prepend(body, resp.Body), "too-big"), nil
	}
	resp.Body.Close()
	e := newEntry(r, resp.StatusCode, resp.Header, body, d, received)
	e.Tags = addTags(e.Tags, tags)
	f.compress(e, resp.Header)
	return f.put(ctx, e, &fill.Result{Entry: e})
}

// relay hands over an origin response to stream without storing it, reading body (fetch gives
// it an idle timeout); reason is why it is not stored.
func relay(resp *http.Response, body io.ReadCloser, reason string) *fill.Result {
	p := &fill.Pass{Status: resp.StatusCode, Header: resp.Header, Body: body, Length: resp.ContentLength, Reason: reason}
	return &fill.Result{Pass: p, NotStored: reason}
}

// speaksForAll reports whether the origin's answer to r says something about everyone who shares
// the entry: not when r carried Cookie or Authorization, to which an origin often answers no-store
// or private for that client alone (any client could otherwise delete a shared entry at will).
func speaksForAll(r *fill.Request) bool { return !r.Cookie && !r.Authorization }

// prepend returns a body that reads head, then the rest of body; closing it closes body.
func prepend(head []byte, body io.ReadCloser) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), body), body}
}

func (f *Filler) originFailed() {
	f.stats.OriginErrors.Add(1)
}

// put writes e to the tiers. An invalidation that landed during the fetch wins: e is still
// served to the requests that waited for it, but not stored.
func (f *Filler) put(ctx context.Context, e *tiers.Entry, res *fill.Result) (*fill.Result, error) {
	err := f.Store.Set(ctx, e)
	switch {
	case errors.Is(err, tiers.ErrStale):
		res.NotStored = "invalidated"
	case err != nil:
		f.Log.Warn("cache store failed", "key", e.Key, "err", err)
		fallthrough
	default:
		f.stats.Stored.Add(1)
	}
	return res, nil
}

// readBody reads a body to store: at most max+1 bytes (one more tells a body too big), into a
// buffer of exactly its size, since the entry keeps it for its whole life (io.ReadAll's growth
// leaves up to half again as much capacity unused). A known length is read in one buffer.
func readBody(body io.Reader, length, max int64) ([]byte, error) {
	if length >= 0 && length <= max {
		// Exactly length bytes (a size class of its own: one byte more would cost the next
		// one, 1152 bytes for a 1 KiB body), then one more read to see a body longer than it said.
		b := make([]byte, length)
		n, err := io.ReadFull(body, b)
		switch {
		case err == io.ErrUnexpectedEOF || err == io.EOF:
			return b[:n:n], nil // shorter than it said: store's length check refuses it
		case err != nil:
			return nil, err
		}
		var extra [1]byte
		if m, _ := io.ReadFull(body, extra[:]); m > 0 {
			return append(b, extra[0]), nil // longer than it said: store's length check refuses it
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return nil, err
	}
	if cap(b)-len(b) > len(b)/16 {
		b = bytes.Clone(b)
	}
	return b, nil
}
