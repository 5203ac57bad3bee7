// Package upstream is swrproxy's client of the origin: the pool of backends (one or more base
// URLs, shared by the fleet through Redis), their balancing and health checks, the origin budget,
// timeouts, TLS, connection reuse, and the rule that hop-by-hop fields never cross the proxy. It
// knows nothing of caching.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"
)

// MaxResponseHeaderBytes bounds the header block of an origin's response.
const MaxResponseHeaderBytes = 1 << 20

// Error is an origin failure: no response (connection refused, timeout, TLS) or a broken body.
type Error struct {
	Target string
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("upstream %s: %v", e.Target, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the failure was a timeout.
func (e *Error) Timeout() bool {
	var ne net.Error
	return errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &ne) && ne.Timeout())
}

// ValidTarget reports whether uri is a request target swrproxy passes on as it is: origin-form
// (starting with '/') or "*", every '%' of the path followed by two hex digits, no fragment, no
// white space or control characters. Anything else would be re-encoded, rejected or retried by the origin client.
func ValidTarget(uri string) bool {
	if uri != "*" && !strings.HasPrefix(uri, "/") {
		return false
	}
	inPath := true
	for i := 0; i < len(uri); i++ {
		switch c := uri[i]; {
		case c <= ' ' || c == 0x7f || c == '#':
			return false
		case c == '?':
			inPath = false // queries are passed on raw, whatever their escapes
		case c == '%' && inPath:
			if i+2 >= len(uri) || !isHex(uri[i+1]) || !isHex(uri[i+2]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// send sends r to backend b and returns the response with its body unread; the caller must
// close it. ctx bounds the whole exchange, body included.
func (c *Client) send(ctx context.Context, b *url.URL, r *Request) (*http.Response, error) {
	target := targetOf(b, r.URI)
	if uri := r.URI; !ValidTarget(uri) && !ValidTarget("/"+uri) {
		return nil, &Error{target, fmt.Errorf("invalid request target %q", r.URI)}
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, b.Scheme+"://"+b.Host+"/", r.Body)
	if err != nil {
		return nil, &Error{target, err}
	}
	// Send the target exactly as the client did: parsing it would re-encode the path (%2F would
	// become a real /, | would become %7C) and change what the origin is asked for.
	path, query, hasQuery := strings.Cut(strings.TrimPrefix(target, b.Scheme+"://"+b.Host), "?")
	switch {
	case r.URI == "*":
		// The asterisk form (OPTIONS *, RFC 9112 §3.2.4) is the server's, not a path under the
		// base URL: sent as "/*" it would ask for a resource named "*".
		req.URL.Path, req.URL.Opaque, req.URL.RawQuery = "", "*", ""
	case strings.HasPrefix(path, "//"):
		// Opaque "//…" would be read as an authority: fall back to the parsed form.
		if req.URL, err = url.Parse(target); err != nil {
			return nil, &Error{target, err}
		}
	default:
		req.URL.Path, req.URL.Opaque, req.URL.RawQuery, req.URL.ForceQuery = "", path, query, hasQuery && query == ""
	}
	if r.Header != nil {
		req.Header = r.Header
	}
	if r.Body != nil {
		req.ContentLength = r.ContentLength
		if req.ContentLength == 0 {
			req.Body = http.NoBody
		}
	}
	req.Host = b.Host
	if c.host != "" {
		req.Host = c.host
	}
	resp, err := c.hc.Do(req)
	if err != nil && errCodings(err) && retryableWithCodings(req) {
		resp, err = c.doCodings(b, req) // a transfer coding Go's client does not decode (codings.go)
	}
	if err != nil {
		return nil, &Error{target, unwrapURLError(err)}
	}
	RemoveHopByHop(resp.Header)
	return resp, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// targetOf joins the base URL b and the client's request target without re-encoding it.
func targetOf(b *url.URL, uri string) string {
	if uri == "" || uri[0] != '/' {
		uri = "/" + uri
	}
	return b.Scheme + "://" + b.Host + strings.TrimSuffix(b.EscapedPath(), "/") + uri
}

// hopByHop are the fields that describe one hop, not the message (RFC 9110 §7.6.1): those of
// the connection, and the proxy authentication fields (§11.7). The connection's are
// httpcache.ConnectionFields, spelt again here because upstream imports nothing of the module's
// caching parts; a test keeps the two lists equal.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Proxy-Authenticate", "Proxy-Authorization"}

// RemoveHopByHop deletes from h the hop-by-hop fields and those that Connection names (RFC 9110
// §7.6.1), in requests to the origin and in its responses alike, and returns the names
// Connection listed (so a caller can forget them elsewhere too).
func RemoveHopByHop(h http.Header) (named []string) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
				named = append(named, name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
	return named
}

// ListsName reports whether a Connection field value lists the field name (any letter case).
// It does not allocate.
func ListsName(connection, name string) bool {
	for item := range strings.SplitSeq(connection, ",") {
		if strings.EqualFold(textproto.TrimString(item), name) {
			return true
		}
	}
	return false
}

// IsHopByHop reports whether the canonical field name is hop-by-hop.
func IsHopByHop(name string) bool {
	for _, h := range hopByHop {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// bodyTimeoutReader closes the body when no byte arrives for idle, so a stalled origin cannot pin a
// streaming client forever while a long download that keeps moving is never cut.
type bodyTimeoutReader struct {
	rc     io.ReadCloser
	idle   time.Duration
	timer  *time.Timer
	cancel context.CancelFunc
	once   sync.Once
	err    error
}

// IdleTimeout wraps body so that it fails when the origin sends nothing for idle; cancel (which
// should cancel the request's context) runs when the body is closed or times out. A time-out
// closes the body too, so that a body nobody reads or closes (its reader gone) still releases
// what it holds: the connection, the backend's in-flight count.
func IdleTimeout(body io.ReadCloser, idle time.Duration, cancel context.CancelFunc) io.ReadCloser {
	r := &bodyTimeoutReader{rc: body, idle: idle, cancel: cancel}
	// Armed only once r.timer is set: Close reads it.
	r.timer = time.AfterFunc(time.Duration(math.MaxInt64), func() { r.Close() })
	r.timer.Reset(idle)
	return r
}

func (r *bodyTimeoutReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 {
		r.timer.Reset(r.idle)
	}
	return n, err
}

func (r *bodyTimeoutReader) Close() error {
	r.once.Do(func() {
		r.timer.Stop()
		r.cancel() // first: a Read in progress ends with the cancellation
		r.err = r.rc.Close()
	})
	return r.err
}
