// Package rawhttp sends bytes that no HTTP client library would send (smuggling attempts,
// ambiguous framing) over a plain TCP connection and reads back every response the peer writes
// on that connection. It is for tests.
package rawhttp

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Response is one response read off the connection, with its body.
type Response struct {
	*http.Response
	Body string
}

// Result is what came back on one connection.
type Result struct {
	Responses []Response
	// Closed reports whether the peer closed the connection (rather than falling quiet).
	Closed bool
}

// Bodies returns the bodies of the responses.
func (r Result) Bodies() []string {
	var out []string
	for _, x := range r.Responses {
		out = append(out, x.Body)
	}
	return out
}

// Conn is an open connection to which raw requests are written.
type Conn struct {
	c  net.Conn
	br *bufio.Reader
}

// Dial connects to addr (host:port) on loopback.
func Dial(addr string) (*Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return &Conn{c: c, br: bufio.NewReader(c)}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Send writes raw as it is, then reads responses until the peer closes the connection or
// sends nothing for quiet.
func (c *Conn) Send(raw string, quiet time.Duration) (Result, error) {
	c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.c, raw); err != nil && !isClosed(err) {
		return Result{}, err
	}
	return c.Read(quiet)
}

// firstWait is how long Read waits for the first byte of the first response: a loaded machine
// (the race detector, a shared CI runner) may take far longer than quiet to answer at all.
const firstWait = 10 * time.Second

// Read reads responses until the peer closes the connection or, after the first response, is
// quiet for quiet.
func (c *Conn) Read(quiet time.Duration) (Result, error) {
	var res Result
	for {
		wait := quiet
		if len(res.Responses) == 0 {
			wait = firstWait
		}
		c.c.SetReadDeadline(time.Now().Add(wait))
		if _, err := c.br.Peek(1); err != nil {
			if isTimeout(err) {
				return res, nil
			}
			res.Closed = true
			return res, nil
		}
		c.c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a response under way is read whole
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			if isClosed(err) {
				res.Closed = true
				return res, nil
			}
			return res, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil && !isClosed(err) {
			return res, err
		}
		res.Responses = append(res.Responses, Response{resp, string(b)})
		if resp.Close {
			// The peer said it closes: wait for it to do so.
			c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err := c.br.Peek(1)
			res.Closed = err != nil && !isTimeout(err)
			if err == nil {
				continue // it did not close: whatever follows is read too
			}
			return res, nil
		}
	}
}

// Exchange dials addr, sends raw and returns what came back (see Conn.Send).
func Exchange(addr, raw string, quiet time.Duration) (Result, error) {
	c, err := Dial(addr)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	return c.Send(raw, quiet)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

func isClosed(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}
