package proxy_test

// Interim responses (RFC 9110 §15.2) from the origin are never stored nor reused, and do not
// break the final response. (They are not forwarded to the client either: fasthttp's server has
// no way to send a 1xx before the final response.)

import (
	"net/http"
	"strings"
	"testing"
)

func TestInterimResponsesAreNeitherStoredNorBreakTheFinalOneRFC9110Section15_2(t *testing.T) {
	t.Parallel()
	for _, cc := range []string{"max-age=60", "no-store"} {
		raw := "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 100 Continue\r\n\r\n" +
			"HTTP/1.1 102 Processing\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nCache-Control: " + cc + "\r\nContent-Length: 5\r\n\r\nhello"
		p := newTestApp(t, newRawOrigin(t, raw))
		want := []string{"MISS", "HIT"}
		if cc == "no-store" {
			want = []string{"BYPASS", "BYPASS"}
		}
		for i, m := range []string{http.MethodGet, http.MethodGet, http.MethodPost} {
			xcache := "BYPASS"
			if i < len(want) {
				xcache = want[i]
			}
			r := p.do(t, m, "/early", strings.NewReader(""))
			expect(t, r, 200, xcache, "hello")
			if got := r.Header.Values("Link"); len(got) != 0 {
				t.Errorf("%s %s: Link %q: the 103's fields leaked into the final response", cc, m, got)
			}
		}
	}
}
