package main

// Range requests (RFC 9110 §14) answered from the cache, end to end: from L2 in another
// instance, on a raw socket straight to swrproxy, and through the nginx template.

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/rawhttp"
	"github.com/swrproxy/swrproxy/internal/redistest"
)

const rangedBody = "abcdefghijklmnopqrstuvwxyz"

// rangeOrigin serves rangedBody, cacheable, with a fixed Date; it counts requests with Range.
func rangeOrigin(t *testing.T, ranged *atomic.Int64) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranged.Add(1)
		}
		w.Header().Set("Date", "Mon, 01 Jan 2024 00:00:00 GMT")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, rangedBody)
	})
}

func TestRangeAndStoredDateFromL2OfAnotherInstance(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	var ranged atomic.Int64
	o := rangeOrigin(t, &ranged)
	env := map[string]string{"SWR_REDIS_URL": rs.URL()}
	a, b := startProxy(t, o.URL, env), startProxy(t, o.URL, env)
	expect(t, get(t, a.URL+"/l2"), 200, "MISS", rangedBody)

	r := get(t, b.URL+"/l2", "Range", "bytes=-3")
	expect(t, r, 206, "HIT", "xyz")
	if cs := r.Header.Get("Cache-Status"); !strings.Contains(cs, "detail=l2") {
		t.Errorf("Cache-Status = %q, want an L2 hit", cs)
	}
	if got := r.Header.Get("Content-Range"); got != "bytes 23-25/26" {
		t.Errorf("Content-Range = %q", got)
	}
	// RFC 9111 §4: the stored Date, through the L2 codec; the age is in Age.
	if got := r.Header.Get("Date"); got != "Mon, 01 Jan 2024 00:00:00 GMT" {
		t.Errorf("Date = %q, want the stored one", got)
	}
	if o.hits.Load() != 1 || ranged.Load() != 0 {
		t.Errorf("origin hits %d (%d with Range), want 1 (0)", o.hits.Load(), ranged.Load())
	}
}

// rangeExchanges are raw requests on one kept-alive connection and the status each must get;
// the 206s and 416s must be framed so that the next reply is read right.
var rangeExchanges = []struct {
	rng    string
	status int
	body   string
}{
	{"bytes=0-2", 206, "abc"},
	{"Bytes=25-", 206, "z"},
	{"bytes=0-0, ,", 206, "a"},
	{"bytes=00000000000000000000000000001-1", 206, "b"},
	{"bytes=1-99999999999999999999999999999", 206, rangedBody[1:]},
	{"bytes=99999999999999999999999999999-", 416, ""},
	{"bytes=26-", 416, ""},
	{"bytes=0-1,2-3", 200, rangedBody},
	{"bytes=-", 200, rangedBody},
	{"bytes=1-0", 200, rangedBody},
	{"bytes=0 -1", 200, rangedBody},
	{"bytes=" + strings.Repeat("0-0,", 40), 200, rangedBody},
	{"pages=1-2", 200, rangedBody},
}

func rawRangeRequests(host string) string {
	var b strings.Builder
	for _, x := range rangeExchanges {
		fmt.Fprintf(&b, "GET /raw HTTP/1.1\r\nHost: %s\r\nRange: %s\r\n\r\n", host, x.rng)
	}
	return b.String()
}

func checkRangeExchanges(t *testing.T, res rawhttp.Result, via string) {
	t.Helper()
	if len(res.Responses) != len(rangeExchanges) {
		t.Fatalf("%s: %d responses to %d requests: %v", via, len(res.Responses), len(rangeExchanges), res.Responses)
	}
	for i, x := range rangeExchanges {
		r := res.Responses[i]
		if r.StatusCode != x.status || r.Body != x.body {
			t.Errorf("%s: Range %q: %d %q, want %d %q", via, x.rng, r.StatusCode, trim(r.Body), x.status, x.body)
		}
		if x.status == 416 && r.Header.Get("Content-Range") != "bytes */26" {
			t.Errorf("%s: Range %q: Content-Range %q, want bytes */26", via, x.rng, r.Header.Get("Content-Range"))
		}
	}
}

func TestRangesOnARawSocketRFC9110Section14(t *testing.T) {
	t.Parallel()
	var ranged atomic.Int64
	o := rangeOrigin(t, &ranged)
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/raw"), 200, "MISS", rangedBody)
	addr := strings.TrimPrefix(p.URL, "http://")
	res, err := rawhttp.Exchange(addr, rawRangeRequests("x"), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	checkRangeExchanges(t, res, "direct")
	if ranged.Load() != 0 {
		t.Errorf("%d requests reached the origin with Range", ranged.Load())
	}
}

func TestRangesThroughNginx(t *testing.T) {
	t.Parallel()
	var ranged atomic.Int64
	o := rangeOrigin(t, &ranged)
	p := startProxy(t, o.URL, nil)
	n := strings.TrimPrefix(startNginx(t, strings.TrimPrefix(p.URL, "http://")), "http://")
	// A first Range on a miss: swrproxy fetches the whole body and answers the range.
	res, err := rawhttp.Exchange(n, "GET /raw HTTP/1.1\r\nHost: x\r\nRange: bytes=3-5\r\nAccept-Encoding: gzip\r\n\r\n", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Responses) != 1 || res.Responses[0].StatusCode != 206 || res.Responses[0].Body != "def" {
		t.Fatalf("first Range through nginx: %v", res.Responses)
	}
	res, err = rawhttp.Exchange(n, rawRangeRequests("x"), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	checkRangeExchanges(t, res, "nginx")
	if o.hits.Load() != 1 || ranged.Load() != 0 {
		t.Errorf("origin hits %d (%d with Range), want 1 (0)", o.hits.Load(), ranged.Load())
	}
}
