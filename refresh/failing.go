package refresh

// Origin failures (5xx, 429, 408): when a good stale copy stays instead of a stored error, and
// which error pages every waiter of a flight may send.

import (
	"fmt"
	"io"
	"net/http"
	"strings"
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
	return httpcache.OriginFailing(status) && stale != nil && !httpcache.OriginFailing(stale.Status) && stale.UsableOnError(now)
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
