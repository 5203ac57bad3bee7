package admin

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawPost is an authorised POST /_swr/servers of body, framed by Content-Length.
func rawPost(body string) string {
	return "POST /_swr/servers HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// rawDelete is an authorised DELETE of target, without a body.
func rawDelete(target string) string {
	return "DELETE " + target + " HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n"
}

func TestARawPostAddsTheBackendAndTheConnectionServesTheNextRequest(t *testing.T) {
	a, _ := newAdmin(t, secret)
	addr, pool := serve(t, a), poolOf(a)
	res := exchange(t, addr, rawPost(`{"url":"http://127.0.0.1:9000"}`)+listServers)
	if got := statuses(res); !slices.Equal(got, []int{201, 200}) || res.Closed {
		t.Fatalf("got %v %q (closed %v), want 201 then 200 on a kept connection", got, res.Bodies(), res.Closed)
	}
	if !strings.Contains(res.Responses[1].Body, `"url":"http://127.0.0.1:9000"`) || !slices.Contains(urls(pool), "http://127.0.0.1:9000") {
		t.Errorf("the backend is not in the pool: %s", res.Responses[1].Body)
	}
}

func TestARawChunkedPostAddsTheBackendAndEndsTheConnection(t *testing.T) {
	a, _ := newAdmin(t, secret)
	addr, pool := serve(t, a), poolOf(a)
	body := `{"url":` + "\r\n" // the chunks: split anywhere
	raw := "POST /_swr/servers HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n" +
		strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n" +
		"1f\r\n" + `"http://127.0.0.1:9000"}` + strings.Repeat(" ", 31-24) + "\r\n0\r\n\r\n" + listServers
	res := exchange(t, addr, raw)
	// fasthttp's chunked reader keeps no end-of-body state: the guard closes after a chunked body.
	if got := statuses(res); !slices.Equal(got, []int{201}) || !res.Closed {
		t.Fatalf("got %v %q (closed %v), want one 201 and the connection closed", got, res.Bodies(), res.Closed)
	}
	if !slices.Contains(urls(pool), "http://127.0.0.1:9000") {
		t.Errorf("the pool is %q", urls(pool))
	}
}

// smuggledAdd is a complete, authorised request that would add a backend if it were parsed as one.
var smuggledAdd = rawPost(`{"url":"http://127.0.0.1:9666"}`)

func TestRawPostsWhoseFramingDisagreesWithTheirJSONChangeNothing(t *testing.T) {
	json := `{"url":"http://127.0.0.1:9000"}`
	for _, tt := range []struct {
		name, raw string
		says      string
	}{
		{"Content-Length covers a request after the JSON",
			"POST /_swr/servers HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: " + strconv.Itoa(len(json+smuggledAdd)) +
				"\r\n\r\n" + json + smuggledAdd, "more than one value"},
		{"Content-Length ends inside the JSON",
			"POST /_swr/servers HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: 10\r\n\r\n" + json + "\r\n\r\n", "invalid JSON"},
		{"a chunked body whose chunks carry a request",
			"POST /_swr/servers HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n" +
				strconv.FormatInt(int64(len(json+smuggledAdd)), 16) + "\r\n" + json + smuggledAdd + "\r\n0\r\n\r\n", "more than one value"},
		{"a chunk size that lies",
			"POST /_swr/servers HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n" +
				"5\r\n" + json + "\r\n0\r\n\r\n" + smuggledAdd, "reading body"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newAdmin(t, secret)
			addr, pool := serve(t, a), poolOf(a)
			before := urls(pool)
			res := exchange(t, addr, tt.raw)
			if len(res.Responses) == 0 || res.Responses[0].StatusCode != 400 || !strings.Contains(res.Responses[0].Body, tt.says) {
				t.Fatalf("got %v %q, want first a 400 saying %q", statuses(res), res.Bodies(), tt.says)
			}
			for _, r := range res.Responses[1:] {
				if r.StatusCode < 400 {
					t.Errorf("a second response %d %q: part of the body was served as a request", r.StatusCode, r.Body)
				}
			}
			if after := urls(pool); !slices.Equal(after, before) {
				t.Errorf("the pool went from %q to %q", before, after)
			}
		})
	}
}

func TestARawPostThatEndsBeforeItsContentLengthChangesNothing(t *testing.T) {
	a, _ := newAdmin(t, secret)
	addr, pool := serve(t, a), poolOf(a)
	before := urls(pool)
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	json := `{"url":"http://127.0.0.1:9000"}`
	io.WriteString(c, "POST /_swr/servers HTTP/1.1\r\nHost: x\r\n"+auth+"Content-Length: 100\r\n\r\n"+json)
	c.(*net.TCPConn).CloseWrite() // the client is done: the body is 68 bytes short
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a short body got no answer: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("a short body: %d %s, want 400", res.StatusCode, b)
	}
	if after := urls(pool); !slices.Equal(after, before) {
		t.Errorf("the pool went from %q to %q", before, after)
	}
}

func TestARawPostOver4KiBIs413AndEndsTheConnection(t *testing.T) {
	a, _ := newAdmin(t, secret)
	addr, pool := serve(t, a), poolOf(a)
	before := urls(pool)
	res := exchange(t, addr, rawPost(`{"url":"http://127.0.0.1:9000/`+strings.Repeat("a", 5<<10)+`"}`)+listServers)
	if got := statuses(res); !slices.Equal(got, []int{413}) || !res.Closed || !strings.Contains(res.Responses[0].Body, "4 KiB") {
		t.Fatalf("got %v %q (closed %v), want one 413 and the connection closed", got, res.Bodies(), res.Closed)
	}
	if after := urls(pool); !slices.Equal(after, before) {
		t.Errorf("the pool went from %q to %q", before, after)
	}
}

// TestTheBodyOfARefusedRequestIsNeverReadAsARequest: protected answers 401 without reading the
// body; the guard must discard it, or the authorised request hidden in it would run.
func TestTheBodyOfARefusedRequestIsNeverReadAsARequest(t *testing.T) {
	a, _ := newAdmin(t, secret)
	addr, pool := serve(t, a), poolOf(a)
	before := urls(pool)
	for _, method := range []string{"POST", "DELETE"} {
		target := "/_swr/servers"
		if method == "DELETE" {
			target = removals[0]
		}
		raw := method + " " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Length: " +
			strconv.Itoa(len(smuggledAdd)) + "\r\n\r\n" + smuggledAdd + healthz
		res := exchange(t, addr, raw)
		if got := statuses(res); !slices.Equal(got, []int{401, 200}) || res.Responses[1].Body != "ok\n" {
			t.Errorf("%s: got %v %q, want 401 then healthz's 200", method, got, res.Bodies())
		}
	}
	if after := urls(pool); !slices.Equal(after, before) {
		t.Errorf("the pool went from %q to %q", before, after)
	}
}

func TestRawDeletesNameAnIPv6BackendInEveryFormOnOneConnection(t *testing.T) {
	a, _ := newAdmin(t, secret)
	addr, pool := serve(t, a), poolOf(a)
	before := urls(pool)
	add := rawPost(`{"url":"http://[::1]:9000"}`)
	raw := add + rawDelete("/_swr/servers/%5B%3A%3A1%5D/9000") +
		add + rawDelete("/_swr/servers/[::1]/9000") +
		add + rawDelete("/_swr/servers/::1/9000") +
		add + rawDelete("/_swr/servers/%3a%3a1/9000") +
		add + rawDelete("/_swr/servers?url=http%3A%2F%2F%5B%3A%3A1%5D%3A9000") +
		rawDelete("/_swr/servers/::1/9000")
	res := exchange(t, addr, raw)
	if got := statuses(res); !slices.Equal(got, []int{201, 204, 201, 204, 201, 204, 201, 204, 201, 204, 404}) || res.Closed {
		t.Fatalf("got %v %q (closed %v), want 201 and 204 five times, then 404", got, res.Bodies(), res.Closed)
	}
	if after := urls(pool); !slices.Equal(after, before) {
		t.Errorf("the pool went from %q to %q", before, after)
	}
}

func TestARawDeleteWithABodyRemovesTheBackendAndLeavesNothingOnTheConnection(t *testing.T) {
	a, _ := newAdmin(t, secret)
	addr, pool := serve(t, a), poolOf(a)
	mustAdd(t, pool, "http://127.0.0.1:9000")
	raw := "DELETE " + removals[0] + " HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Length: " + strconv.Itoa(len(smuggledAdd)) +
		"\r\n\r\n" + smuggledAdd + healthz
	res := exchange(t, addr, raw)
	if got := statuses(res); !slices.Equal(got, []int{204, 200}) {
		t.Errorf("Content-Length body: got %v %q, want 204 then healthz's 200", got, res.Bodies())
	}
	mustAdd(t, pool, "http://127.0.0.1:9000")
	raw = "DELETE " + removals[1] + " HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n" +
		strconv.FormatInt(int64(len(smuggledAdd)), 16) + "\r\n" + smuggledAdd + "\r\n0\r\n\r\n" + healthz
	res = exchange(t, addr, raw)
	if got := statuses(res); !slices.Equal(got, []int{204}) || !res.Closed {
		t.Errorf("chunked body: got %v %q (closed %v), want one 204 and the connection closed", got, res.Bodies(), res.Closed)
	}
	if got := urls(pool); len(got) != 1 || slices.Contains(got, "http://127.0.0.1:9666") {
		t.Errorf("the pool is %q, want only the environment's backend", got)
	}
}

func TestRawDeletesWithBadEscapesAre400(t *testing.T) {
	a, _ := newAdmin(t, secret)
	addr, pool := serve(t, a), poolOf(a)
	before := urls(pool)
	res := exchange(t, addr, rawDelete("/_swr/servers/127.0.0.1/%zz")+rawDelete("/_swr/servers/%zz/80")+
		rawDelete("/_swr/servers/%5B%3A%3A1/80")+rawDelete("/_swr/servers?url=%zz"))
	if got := statuses(res); !slices.Equal(got, []int{400, 400, 400, 400}) {
		t.Errorf("got %v %q, want four 400s", got, res.Bodies())
	}
	if after := urls(pool); !slices.Equal(after, before) {
		t.Errorf("the pool went from %q to %q", before, after)
	}
}
