package testenv

import (
	"bufio"
	"testing"

	"github.com/valyala/fasthttp"
)

// Patterned is a body of n bytes in which a byte out of place (a chunk lost, doubled or
// reordered on its way) shows.
func Patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%23 + i/4096%3)
	}
	return b
}

// ReadReply reads one HTTP/1.1 reply from br (without a body when it answers a HEAD), failing
// the test if it cannot.
func ReadReply(tb testing.TB, br *bufio.Reader, head bool) *fasthttp.Response {
	tb.Helper()
	res := new(fasthttp.Response)
	res.SkipBody = head
	if err := res.Read(br); err != nil {
		tb.Fatalf("reading a reply: %v", err)
	}
	return res
}
