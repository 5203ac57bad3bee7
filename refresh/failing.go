package refresh

// Origin failures (5xx, 429, 408): when a good stale copy stays instead of a stored error, and
// which error pages every waiter of a flight may send.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// reasonStaleKept is why a storable origin failure is not stored: the good copy it would
// replace may still be served on error.
const reasonStaleKept = "stale-if-error"

// keepStale reports whether a response with status, which httpcache.Decide lets us store, must
// not replace stale, the copy a fill revalidates: an origin failure (httpcache.OriginFailing)
// while stale is a good copy (not itself a failure) that may still be served on error at now
// (RFC 5861 §4). The failure is then relayed and the good copy served in its place (RFC 9111
// §4.3.3 lets a cache treat a 5xx to a validation as no answer). Any other storable response,
// an error with explicit freshness included, is stored: a failing origin is then asked once per
// lifetime of its error, not once per client (RFC 9111 §3, §4.2.1).
func keepStale(status int, stale *tiers.Entry, now time.Time) bool {
	return httpcache.OriginFailing(status) && goodOnError(stale, now)
}

// goodOnError reports whether stale is a good copy (not itself a failure) that may be served on
// error at now.
func goodOnError(stale *tiers.Entry, now time.Time) bool {
	return stale != nil && !httpcache.OriginFailing(int(stale.Status)) && stale.UsableOnError(now)
}

// relayShared relays an origin error page that every waiter of the flight may send: read whole
// here when it is small, instead of making each waiter ask a struggling origin again.
func relayShared(r *fill.Request, resp *http.Response, reason string) (*fill.Result, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSharedError+1))
	if err != nil {
		resp.Body.Close()
		return nil, &upstream.Error{Target: r.URI, Err: fmt.Errorf("read error body: %w", err)}
	}
	if len(body) > maxSharedError {
		return relay(resp, prepend(body, resp.Body), reason), nil
	}
	resp.Body.Close()
	p := &fill.Pass{Status: resp.StatusCode, Header: resp.Header, Length: int64(len(body)), Reason: reason, Shared: body}
	return &fill.Result{Pass: p, NotStored: reason}, nil
}

// maxSharedError bounds the error page that is read once and sent to every waiter.
const maxSharedError = 64 << 10

// shareable reports whether an origin error page may be sent to every request of the flight:
// a 5xx of a request without credentials, that nothing marks private to that request. Not a
// 429, which an origin gives to one client (its address, its account) and not to the others;
// not a page with Vary, which says it was chosen by fields in which the waiters may differ
// (their cookies, their encodings); not an answer to Cookie or Authorization, which may be that
// user's page. The other waiters of such a flight fetch their own.
func shareable(r *fill.Request, resp *http.Response) bool {
	if r.Authorization || r.Cookie || resp.StatusCode < 500 || resp.ContentLength > maxSharedError ||
		len(resp.Header.Values("Vary")) > 0 || resp.Header.Get("Set-Cookie") != "" {
		return false
	}
	cc := httpcache.ParseCacheControl(strings.Join(resp.Header.Values("Cache-Control"), ", "))
	return !cc.Private && len(cc.PrivateFields) == 0
}

// failingMarks remember, per variant, until when an origin error stands that the origin declared
// fresh (explicit freshness) but that was not stored because a good copy may be served in its
// place (keepStale). Until then a fill with that copy does not ask the origin again: it is asked
// once per lifetime of its error (RFC 9111 §4.2.1), as when the error is stored. Only an error
// that speaks for everyone marks (see markable), and a mark holds only for requests that send the
// origin the same unkeyed fields (markScope); a mark lasts at most maxFailingFor; marks are
// bounded in count and bytes; an invalidation forgets its key's marks, and a fetch that began
// before any invalidation marks nothing (it may predate the fix the invalidation announces).
type failingMarks struct {
	mu      sync.Mutex
	until   map[string]map[string]time.Time // key → variant ID → until when
	n       int                             // marks (variants) held
	bytes   int
	forgets uint64 // Forget calls so far: the epoch a fetch compares when it is done
}

const (
	// maxFailingMarks and maxFailingBytes bound the marks; past either, expired marks are
	// dropped and then arbitrary ones (a forgotten mark only means one more origin request).
	maxFailingMarks = 10_000
	maxFailingBytes = 4 << 20
	// maxFailingFor caps a mark's life, whatever lifetime the origin gave its error: as long as
	// a stored 5xx may last (httpcache.MaxErrorFresh), since a client can make the origin fail
	// with a forwarded field that is not part of the key (User-Agent, Accept-*).
	maxFailingFor = httpcache.MaxErrorFresh
	markOverhead  = 480 // what the two maps cost per mark (about 500 bytes of heap in all, measured by the security review)
)

// markable reports whether an origin failure to r (resp, its freshness decided as d) may mark
// the key failing for everyone: not when r carried Cookie or Authorization, nor for an error
// page private to r (see shareable: a 429, Vary, private, Set-Cookie), nor for a guessed
// lifetime. A client could otherwise make the origin fail for itself alone (a malformed cookie,
// a bot filter, a per-address rate limit) and stop every other user's revalidations.
func markable(r *fill.Request, resp *http.Response, d httpcache.Decision) bool {
	return speaksForAll(r) && shareable(r, resp) && !d.Guessed && d.Fresh > 0
}

// epoch is the number of invalidations so far, read when a fetch begins.
func (m *failingMarks) epoch() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.forgets
}

// mark marks key's variant failing until until (at most maxFailingFor from now), unless an
// invalidation came after epoch.
func (m *failingMarks) mark(key, variant string, until time.Time, epoch uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.forgets != epoch {
		return
	}
	if limit := time.Now().Add(maxFailingFor); until.After(limit) {
		until = limit
	}
	if m.until == nil {
		m.until = map[string]map[string]time.Time{}
	}
	vs := m.until[key]
	if _, ok := vs[variant]; !ok {
		size := len(key) + len(variant) + markOverhead
		if m.n >= maxFailingMarks || m.bytes+size > maxFailingBytes {
			m.sweep()
			vs = m.until[key]
		}
		if vs == nil {
			vs = map[string]time.Time{}
			m.until[key] = vs
		}
		m.n++
		m.bytes += size
	}
	vs[variant] = until
}

// sweep drops the expired marks, then arbitrary ones down to three quarters of both bounds, so
// that it runs once per quarter of the bound, not once per new mark.
func (m *failingMarks) sweep() {
	now := time.Now()
	for key, vs := range m.until {
		for v, t := range vs {
			if !t.After(now) {
				m.drop(key, v)
			}
		}
	}
	for key, vs := range m.until {
		for v := range vs {
			if m.n < maxFailingMarks*3/4 && m.bytes < maxFailingBytes*3/4 {
				return
			}
			m.drop(key, v)
		}
	}
}

func (m *failingMarks) drop(key, variant string) {
	vs := m.until[key]
	if _, ok := vs[variant]; !ok {
		return
	}
	delete(vs, variant)
	if len(vs) == 0 {
		delete(m.until, key)
	}
	m.n--
	m.bytes -= len(key) + len(variant) + markOverhead
}

// holds reports whether key's variant's origin error still stands at now.
func (m *failingMarks) holds(key, variant string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.until[key][variant]
	if ok && !t.After(now) {
		m.drop(key, variant)
		return false
	}
	return ok
}

// forget drops the marks of key's variants and moves the epoch on.
func (m *failingMarks) forget(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgets++
	for v := range m.until[key] {
		m.drop(key, v)
	}
}

// markScope: a mark holds only for requests that send the origin the same
// unkeyed fields as the one that failed (the client's address and negotiation fields), so a
// client that makes the origin fail for itself alone stops only its own revalidations.
func markScope(r *fill.Request) string {
	if r.Header == nil {
		return ""
	}
	h := sha256.New()
	for _, n := range []string{"X-Forwarded-For", "User-Agent", "Accept", "Accept-Language", "Accept-Charset", "Accept-Encoding"} {
		h.Write([]byte(n + "\x00" + r.Header.Get(n) + "\x00"))
	}
	return "\x00" + hex.EncodeToString(h.Sum(nil)[:8])
}
