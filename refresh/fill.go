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
	"strings"
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
func (f *Filler) Fill(ctx context.Context, r *fill.Request) (*fill.Result, error) {
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
func (f *Filler) fill(ctx context.Context, r *fill.Request, flightKey string) (*fill.Result, error) {
	if r.Authorization || r.Alone {
		// Never share a response fetched with one client's credentials with another client.
		return f.safeFetch(context.WithoutCancel(ctx), r, false)
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
			res, err = nil, &upstream.Error{Target: r.URI, Err: fmt.Errorf("%w: %v", errPanic, p)}
			f.Log.Error("panic in fill", "key", r.Key, "panic", p)
		}
	}()
	return f.fetch(ctx, r, collapse)
}

// fetch does the origin trip for r (taking the cross-instance lock when collapse is set) and
// stores what may be stored. It runs on a context detached from any client.
func (f *Filler) fetch(ctx context.Context, r *fill.Request, collapse bool) (*fill.Result, error) {
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
	handOff := func(resp *http.Response, body io.ReadCloser, reason string) *fill.Result {
		handedOff = true
		timer.Stop()
		p := fill.NewPass(r)
		p.Status, p.Header, p.Length, p.Reason = resp.StatusCode, resp.Header, resp.ContentLength, reason
		p.Body = upstream.IdleTimeout(body, f.Timeout, cancel)
		return &fill.Result{Pass: p, NotStored: reason}
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
				p := fill.NewPass(r)
				p.Status, p.Header, p.Length, p.Reason, p.Shared = resp.StatusCode, resp.Header, int64(len(body)), d.Reason, body
				return &fill.Result{Pass: p, NotStored: d.Reason}, nil
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
	return f.store(ctx, e, &fill.Result{Entry: e})
}

// speaksForAll reports whether the origin's answer to r says something about everyone who shares
// the entry: not when r carried Cookie or Authorization, to which an origin often answers no-store
// or private for that client alone (any client could otherwise delete a shared entry at will).
func speaksForAll(r *fill.Request) bool { return !r.Cookie && !r.Authorization }

// maxSharedError bounds the error page that is read once and sent to every waiter.
const maxSharedError = 64 << 10

// shareable reports whether an origin error page may be sent to every request of the flight:
// nothing marks it private to the request it was fetched for.
func shareable(r *fill.Request, resp *http.Response) bool {
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
func (f *Filler) store(ctx context.Context, e *tiers.Entry, res *fill.Result) (*fill.Result, error) {
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
