package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is the demo origin on an httptest listener, with a clock the test moves.
type testServer struct {
	*httptest.Server
	s   *server
	mu  sync.Mutex
	now time.Time
}

func newTestServer(t *testing.T, adminURL, secret string) *testServer {
	t.Helper()
	ts := &testServer{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c := config{delay: 0, tick: 10 * time.Second, adminURL: adminURL, secret: secret}
	ts.s = newServer(c, slog.New(slog.DiscardHandler))
	ts.s.now = func() time.Time { ts.mu.Lock(); defer ts.mu.Unlock(); return ts.now }
	ts.s.prices["ALGO-USD"].setAt = ts.now
	ts.Server = httptest.NewServer(ts.s)
	t.Cleanup(ts.Close)
	return ts
}

func (ts *testServer) advance(d time.Duration) {
	ts.mu.Lock()
	ts.now = ts.now.Add(d)
	ts.mu.Unlock()
}

func send(t *testing.T, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return res, string(b)
}

func decodeQuote(t *testing.T, body string) quote {
	t.Helper()
	var q quote
	if err := json.Unmarshal([]byte(body), &q); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return q
}

func TestPriceIsCacheableTaggedAndAnswers304(t *testing.T) {
	ts := newTestServer(t, "http://127.0.0.1:1", "")
	res, body := send(t, "GET", ts.URL+"/api/prices?pair=algo-usd")
	if res.StatusCode != 200 {
		t.Fatalf("status %d, body %q", res.StatusCode, body)
	}
	for name, want := range map[string]string{
		"Cache-Control": "public, max-age=5, stale-while-revalidate=30",
		"Surrogate-Key": "prices pair-ALGO-USD",
		"Content-Type":  "application/json",
	} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if q := decodeQuote(t, body); q.Pair != "ALGO-USD" || q.Price != 0.1834 || q.Version != 1 || q.Tick != 0 {
		t.Errorf("quote = %+v, want ALGO-USD at 0.1834, version 1, tick 0", q)
	}
	etag := res.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) {
		t.Fatalf("ETag = %q, want a strong quoted tag", etag)
	}
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag} {
		res, body := send(t, "GET", ts.URL+"/api/prices?pair=ALGO-USD", "If-None-Match", inm)
		if res.StatusCode != 304 || body != "" || res.Header.Get("ETag") != etag {
			t.Errorf("If-None-Match %s: got %d ETag %q body %q, want an empty 304", inm, res.StatusCode, res.Header.Get("ETag"), body)
		}
	}
	if res, _ := send(t, "GET", ts.URL+"/api/prices?pair=ALGO-USD", "If-None-Match", `"other"`); res.StatusCode != 200 {
		t.Errorf("a non-matching If-None-Match got %d, want 200", res.StatusCode)
	}
}

func TestPriceDriftsEveryTick(t *testing.T) {
	ts := newTestServer(t, "http://127.0.0.1:1", "")
	res1, body1 := send(t, "GET", ts.URL+"/api/prices?pair=ALGO-USD")
	ts.advance(9 * time.Second)
	if _, body := send(t, "GET", ts.URL+"/api/prices?pair=ALGO-USD"); body != body1 {
		t.Errorf("within one tick the body changed: %q then %q", body1, body)
	}
	ts.advance(time.Second)
	res2, body2 := send(t, "GET", ts.URL+"/api/prices?pair=ALGO-USD")
	q := decodeQuote(t, body2)
	if q.Tick != 1 || q.Price == 0.1834 {
		t.Errorf("after one tick: %+v, want tick 1 and a different price", q)
	}
	if res1.Header.Get("ETag") == res2.Header.Get("ETag") {
		t.Errorf("the ETag did not change with the body: %s", res2.Header.Get("ETag"))
	}
}

func TestUnknownAndMalformedPairs(t *testing.T) {
	ts := newTestServer(t, "http://127.0.0.1:1", "")
	res, _ := send(t, "GET", ts.URL+"/api/prices?pair=NOPE-USD")
	if res.StatusCode != 404 || res.Header.Get("Surrogate-Key") != "prices pair-NOPE-USD" {
		t.Errorf("unknown pair: %d Surrogate-Key %q, want a tagged 404", res.StatusCode, res.Header.Get("Surrogate-Key"))
	}
	if res, _ := send(t, "GET", ts.URL+"/api/prices?pair=../etc"); res.StatusCode != 400 {
		t.Errorf("malformed pair: %d, want 400", res.StatusCode)
	}
	res, body := send(t, "GET", ts.URL+"/api/prices")
	if res.StatusCode != 200 || !strings.Contains(body, `"BTC-USD"`) ||
		res.Header.Get("Surrogate-Key") != "prices pair-ALGO-USD pair-BTC-USD pair-ETH-USD" {
		t.Errorf("all prices: %d Surrogate-Key %q body %q", res.StatusCode, res.Header.Get("Surrogate-Key"), body)
	}
	if res, _ := send(t, "GET", ts.URL+"/healthz"); res.StatusCode != 200 {
		t.Errorf("healthz: %d", res.StatusCode)
	}
}

// swr records the invalidation requests it gets, like swrproxy's /_swr/invalidate would.
type swr struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, path, auth, contentType, body string
}

func newSWR(t *testing.T) *swr {
	s := &swr{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"matched":1,"cleared":0,"refreshing":1,"instances":1}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *swr) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

func TestEditChangesThePriceAndInvalidatesItsTag(t *testing.T) {
	inv := newSWR(t)
	ts := newTestServer(t, inv.URL, "s3cret")

	res, body := send(t, "POST", ts.URL+"/admin/edit?pair=algo-usd&price=0.25")
	if res.StatusCode != 200 || body != `{"matched":1,"cleared":0,"refreshing":1,"instances":1}` {
		t.Fatalf("edit: %d %q, want swrproxy's reply", res.StatusCode, body)
	}
	reqs := inv.requests()
	if len(reqs) != 1 {
		t.Fatalf("swrproxy got %d requests, want 1", len(reqs))
	}
	want := recorded{"POST", "/_swr/invalidate", "Bearer s3cret", "application/json", `{"tags":["pair-ALGO-USD"],"mode":"auto"}`}
	if reqs[0] != want {
		t.Errorf("invalidation = %+v\nwant %+v", reqs[0], want)
	}
	_, body = send(t, "GET", ts.URL+"/api/prices?pair=ALGO-USD")
	if q := decodeQuote(t, body); q.Price != 0.25 || q.Version != 2 || q.Tick != 0 {
		t.Errorf("after the edit: %+v, want 0.25, version 2, tick 0", q)
	}

	// A new pair is created.
	if res, _ := send(t, "POST", ts.URL+"/admin/edit?pair=SOL-USD&price=150"); res.StatusCode != 200 {
		t.Errorf("creating SOL-USD: %d", res.StatusCode)
	}
	if res, _ := send(t, "GET", ts.URL+"/api/prices?pair=SOL-USD"); res.StatusCode != 200 {
		t.Errorf("SOL-USD after creating it: %d", res.StatusCode)
	}
}

func TestBadEditsChangeNothingAndSendNothing(t *testing.T) {
	inv := newSWR(t)
	ts := newTestServer(t, inv.URL, "s3cret")
	for _, q := range []string{"pair=ALGO-USD", "pair=ALGO-USD&price=-1", "pair=ALGO-USD&price=abc", "price=1", "pair=x&price=1"} {
		if res, _ := send(t, "POST", ts.URL+"/admin/edit?"+q); res.StatusCode != 400 {
			t.Errorf("edit %s: %d, want 400", q, res.StatusCode)
		}
	}
	if res, _ := send(t, "GET", ts.URL+"/admin/edit?pair=ALGO-USD&price=1"); res.StatusCode != 405 {
		t.Errorf("GET /admin/edit: %d, want 405", res.StatusCode)
	}
	if n := len(inv.requests()); n != 0 {
		t.Errorf("swrproxy got %d invalidations, want none", n)
	}
	if _, body := send(t, "GET", ts.URL+"/api/prices?pair=ALGO-USD"); decodeQuote(t, body).Version != 1 {
		t.Errorf("price changed by a bad edit: %s", body)
	}
}

func TestEditReportsAnUnreachableSwrproxy(t *testing.T) {
	inv := newSWR(t)
	inv.Close() // nothing listens there any more
	ts := newTestServer(t, inv.URL, "s3cret")
	res, body := send(t, "POST", ts.URL+"/admin/edit?pair=ALGO-USD&price=0.3")
	if res.StatusCode != 502 || !strings.Contains(body, `"edited":"ALGO-USD"`) {
		t.Errorf("got %d %q, want 502 saying the edit was made", res.StatusCode, body)
	}
}

func TestParseConfig(t *testing.T) {
	env := map[string]string{"ORIGIN_DELAY": "50ms", "SWR_ADMIN_URL": "http://swr:8000/", "SWR_INVALIDATE_SECRET": "k"}
	c, err := parseConfig([]string{"-listen", "127.0.0.1:0"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := config{listen: "127.0.0.1:0", delay: 50 * time.Millisecond, tick: 10 * time.Second, adminURL: "http://swr:8000", secret: "k"}
	if c != want {
		t.Errorf("config = %+v, want %+v", c, want)
	}
	tests := []struct{ name, value string }{
		{"ORIGIN_DELAY", "soon"},
		{"ORIGIN_TICK", "0s"},
		{"SWR_ADMIN_URL", "swrproxy:8000"},
	}
	for _, tt := range tests {
		_, err := parseConfig(nil, func(k string) string {
			if k == tt.name {
				return tt.value
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), tt.name) {
			t.Errorf("%s=%q: error %v, want one naming the setting", tt.name, tt.value, err)
		}
	}
}

// swrproxy's default health check is GET /: the demo origin answers it 2xx (else the quick
// start's only backend would be marked down after three checks).
func TestTheDefaultHealthCheckPasses(t *testing.T) {
	ts := newTestServer(t, "", "")
	for _, path := range []string{"/", "/healthz"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Errorf("GET %s = %d, want 2xx", path, resp.StatusCode)
		}
	}
	if resp, err := http.Get(ts.URL + "/nothing"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing = %v, %v; want 404 (only / itself)", resp, err)
	} else {
		resp.Body.Close()
	}
}
