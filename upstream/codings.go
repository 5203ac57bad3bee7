package upstream

import (
	"bufio"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Transfer codings other than chunked. RFC 9112 §6.1 lets an HTTP/1.1 origin send them (gzip,
// deflate, chunked last), and RFC 9112 §6.3 makes their framing clear: chunked as the final
// coding, else the body runs to the connection's close. Go's HTTP client refuses any coding but
// chunked before anyone sees the response ("unsupported transfer encoding"), which made such an
// origin's every answer a 502. When it does, a GET or HEAD without a body is asked again on a
// connection of its own (HTTP/1.1, closed after the response), read here: the transfer codings
// are removed (chunked by httputil, then gzip or deflate), and the response goes on as if the
// origin had sent the decoded body without Transfer-Encoding.

// errCodings matches the errors of Go's client for a Transfer-Encoding it does not decode.
func errCodings(err error) bool {
	s := err.Error()
	return strings.Contains(s, "unsupported transfer encoding") || strings.Contains(s, "too many transfer encodings")
}

// retryableWithCodings reports whether req may be asked again for its transfer codings: a GET
// or HEAD without a body (asking twice changes nothing at the origin).
func retryableWithCodings(req *http.Request) bool {
	return (req.Method == http.MethodGet || req.Method == http.MethodHead) && (req.Body == nil || req.Body == http.NoBody)
}

// doCodings sends req on a new connection and reads the response, decoding transfer codings Go's
// client does not. The connection closes with the body.
func (c *Client) doCodings(b *url.URL, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	d := &net.Dialer{Timeout: c.dialTimeout}
	var conn net.Conn
	var err error
	if b.Scheme == "https" {
		cfg := c.tls.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		if cfg.ServerName == "" {
			cfg.ServerName = b.Hostname()
		}
		conn, err = (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", hostPort(b))
	} else {
		conn, err = d.DialContext(ctx, "tcp", hostPort(b))
	}
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*http.Response, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err() // the close above was the cancellation's
		}
		return nil, err
	}
	out := req.Clone(ctx)
	out.Header = req.Header.Clone()
	out.Header.Set("Connection", "close")
	if err := out.Write(conn); err != nil {
		return fail(err)
	}
	// The header block is bounded as the client's is, and its wait by the header timeout.
	resp, err := readCodedResponse(conn, req, c.headerTimeout, closerFunc(func() error { stop(); return conn.Close() }))
	if err != nil {
		return fail(err)
	}
	return resp, nil
}

// maxInterim is how many interim responses readCodedResponse skips before giving up.
const maxInterim = 8

// readCodedResponse reads the response to req from conn (interim responses skipped) and
// returns it with its transfer codings removed; closing its body calls done. timeout bounds
// the wait for the header block and the decoders' headers (0: none).
func readCodedResponse(conn io.Reader, req *http.Request, timeout time.Duration, done io.Closer) (*http.Response, error) {
	fail := func(err error) (*http.Response, error) { return nil, err }
	dl, _ := conn.(interface{ SetReadDeadline(time.Time) error })
	if dl != nil && timeout > 0 {
		dl.SetReadDeadline(time.Now().Add(timeout))
	}
	lim := &headerLimit{r: conn, n: MaxResponseHeaderBytes}
	br := bufio.NewReader(lim)
	tp := textproto.NewReader(br)
	var status, minor int
	var proto, statusText string
	var h textproto.MIMEHeader
	for interim := 0; ; interim++ {
		line, err := tp.ReadLine()
		if err != nil {
			return fail(err)
		}
		var code string
		proto, statusText, _ = strings.Cut(line, " ")
		statusText = strings.TrimLeft(statusText, " ")
		code, _, _ = strings.Cut(statusText, " ")
		major, mi, ok := http.ParseHTTPVersion(proto)
		if !ok || major != 1 || len(code) != 3 || code[0] < '1' || code[0] > '9' {
			return fail(fmt.Errorf("malformed status line %q", line))
		}
		if status, err = strconv.Atoi(code); err != nil {
			return fail(fmt.Errorf("malformed status line %q", line))
		}
		minor = mi
		if h, err = tp.ReadMIMEHeader(); err != nil {
			return fail(err)
		}
		switch {
		case status == http.StatusSwitchingProtocols:
			return fail(errors.New("101 Switching Protocols to a request that asked for no upgrade"))
		case status < 200 && interim >= maxInterim:
			return fail(fmt.Errorf("more than %d interim responses", maxInterim))
		}
		if status >= 200 {
			break // interim responses (1xx) are dropped, as Go's client drops them
		}
	}
	lim.n = -1 // the body is not bounded here: the callers bound what they keep
	resp := &http.Response{
		Status: statusText, StatusCode: status, Proto: proto, ProtoMajor: 1, ProtoMinor: minor,
		Header: http.Header(h), Request: req, ContentLength: -1, Close: true,
	}
	codings := splitCodings(h.Values("Transfer-Encoding"))
	if len(codings) == 0 {
		// Asked again because the first answer had transfer codings, this one has none: its
		// framing would be Content-Length's, which this reader does not do. Refuse it rather
		// than read it to the close (bytes past its length would become the body).
		return fail(errors.New("asked again for its transfer codings, the origin answered without"))
	}
	resp.Header.Del("Transfer-Encoding")
	resp.Header.Del("Content-Length") // RFC 9112 §6.3: Transfer-Encoding overrides it
	var body io.Reader = br
	if req.Method == http.MethodHead || status == http.StatusNoContent || status == http.StatusNotModified {
		body = http.NoBody
		codings = nil
	} else if n := len(codings); n > 0 && codings[n-1] == "chunked" {
		body, codings = httputil.NewChunkedReader(br), codings[:n-1]
	} // else: the body runs to the close (RFC 9112 §6.3, rule 4 for responses)
	for i := len(codings) - 1; i >= 0; i-- {
		switch codings[i] {
		case "chunked":
			return fail(errors.New("chunked applied more than once"))
		case "gzip", "x-gzip":
			zr, err := gzip.NewReader(body)
			if err != nil {
				return fail(fmt.Errorf("gzip transfer coding: %w", err))
			}
			body = zr
		case "deflate": // the zlib format (RFC 9110 §8.4.1.2)
			zr, err := zlib.NewReader(body)
			if err != nil {
				return fail(fmt.Errorf("deflate transfer coding: %w", err))
			}
			body = zr
		case "identity": // not a coding any more (RFC 9112 §7), but harmless
		default:
			return fail(fmt.Errorf("unsupported transfer coding %q", codings[i]))
		}
	}
	// The deadline covered the decoders' own headers too (gzip reads its header now).
	if dl != nil {
		dl.SetReadDeadline(time.Time{})
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{body, done}
	return resp, nil
}

// splitCodings returns the transfer codings named by the Transfer-Encoding lines, lower-cased,
// in the order applied.
func splitCodings(lines []string) []string {
	var out []string
	for _, l := range lines {
		for item := range strings.SplitSeq(l, ",") {
			if name, _, _ := strings.Cut(item, ";"); strings.TrimSpace(name) != "" {
				out = append(out, strings.ToLower(strings.TrimSpace(name)))
			}
		}
	}
	return out
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// headerLimit fails reads after n bytes (n < 0: no limit).
type headerLimit struct {
	r io.Reader
	n int64
}

func (l *headerLimit) Read(p []byte) (int, error) {
	if l.n == 0 {
		return 0, errors.New("response header block over the limit")
	}
	if l.n > 0 && int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	if l.n > 0 {
		l.n -= int64(n)
	}
	return n, err
}
