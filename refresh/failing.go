package refresh

// Origin failures (5xx, 429, 408): when a good stale copy stays instead of a stored error, and
// which error pages every waiter of a flight may send.

import (
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
	return stale != nil && !httpcache.OriginFailing(stale.Status) && stale.UsableOnError(now)
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

// failingMarks remember, per key, until when an origin error stands that the origin declared
// fresh (explicit freshness) but that was not stored because a good copy may be served in its
// place (keepStale). Until then a fill with such a copy does not ask the origin again: it is
// asked once per lifetime of its error (RFC 9111 §4.2.1), as when the error is stored. Bounded
// in count; a key's mark goes with an invalidation (Forget).
type failingMarks struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// maxFailingMarks bounds the keys remembered as failing (about 1 MiB at most); past it, expired
// marks are dropped and then arbitrary ones (a forgotten mark only means one more origin request).
const maxFailingMarks = 10_000

func (m *failingMarks) mark(key string, until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.until == nil {
		m.until = map[string]time.Time{}
	}
	if _, ok := m.until[key]; !ok && len(m.until) >= maxFailingMarks {
		// Full: drop the expired marks, then arbitrary ones down to three quarters, so that
		// the sweep runs once per quarter of the bound, not once per new key.
		now := time.Now()
		for k, t := range m.until {
			if !t.After(now) {
				delete(m.until, k)
			}
		}
		for k := range m.until {
			if len(m.until) < maxFailingMarks*3/4 {
				break
			}
			delete(m.until, k)
		}
	}
	m.until[key] = until
}

// holds reports whether key's origin error still stands at now.
func (m *failingMarks) holds(key string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.until[key]
	if ok && !t.After(now) {
		delete(m.until, key)
		return false
	}
	return ok
}

func (m *failingMarks) forget(key string) {
	m.mu.Lock()
	delete(m.until, key)
	m.mu.Unlock()
}
