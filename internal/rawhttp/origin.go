package rawhttp

import (
	"bufio"
	"net"
	"sync/atomic"
	"testing"
)

// Origin is an origin that writes bytes no HTTP server library would (transfer codings Go does
// not decode, framing of its own): it reads each request's header block on a connection of its
// own, counts it, writes what respond returns and closes the connection.
type Origin struct {
	Addr string       // host:port
	Hits atomic.Int64 // requests read
}

// NewOrigin starts an Origin on 127.0.0.1 that answers with respond(n), n the 1-based number of
// the request; it stops when the test ends.
func NewOrigin(tb testing.TB, respond func(n int64) []byte) *Origin {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	o := &Origin{Addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if l == "\r\n" {
						break
					}
				}
				c.Write(respond(o.Hits.Add(1)))
			}()
		}
	}()
	return o
}
