package proxy_test

// Date (RFC 9110 §6.6.1, RFC 9111 §4): a reply from the cache carries the stored Date, its age
// being in Age; a reply that is not from the cache carries the origin's Date, or a current one.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/proxy"
)

// originDate is a Date an origin sent long ago: a reply carrying it was not re-stamped.
const originDate = "Mon, 01 Jan 2024 00:00:00 GMT"

func TestCachedRepliesCarryTheStoredDateRFC9111Section4(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", originDate)
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", `"v1"`)
		fmt.Fprint(w, "body")
	})
	p := newTestApp(t, o.URL)
	for _, xcache := range []string{"MISS", "HIT"} {
		r := p.get(t, "/d")
		expect(t, r, 200, xcache, "body")
		if got := r.Header.Values("Date"); len(got) != 1 || got[0] != originDate {
			t.Errorf("%s: Date = %q, want the stored %q", xcache, got, originDate)
		}
	}
	r := p.get(t, "/d", "If-None-Match", `"v1"`)
	if r.StatusCode != 304 || r.Header.Get("Date") != originDate {
		t.Errorf("304 from the cache: status %d Date %q, want 304 with %q", r.StatusCode, r.Header.Get("Date"), originDate)
	}
	r = p.do(t, http.MethodHead, "/d", nil)
	if r.StatusCode != 200 || r.Header.Get("Date") != originDate {
		t.Errorf("HEAD from the cache: status %d Date %q, want 200 with %q", r.StatusCode, r.Header.Get("Date"), originDate)
	}
}

func TestAStoredResponseWithoutDateKeepsItsReceiptTimeRFC9110Section6_6_1(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil // net/http sends none
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprint(w, "body")
	})
	p := newTestApp(t, o.URL)
	miss := p.get(t, "/nodate")
	expect(t, miss, 200, "MISS", "body")
	stored, err := http.ParseTime(miss.Header.Get("Date"))
	if err != nil {
		t.Fatalf("MISS Date = %q: %v", miss.Header.Get("Date"), err)
	}
	// Until a current Date would differ from the stored one (fasthttp's own clock, which would
	// stamp the reply, lags by up to a second).
	for !time.Now().Truncate(time.Second).After(stored.Add(time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	hit := p.get(t, "/nodate")
	expect(t, hit, 200, "HIT", "body")
	if hit.Header.Get("Date") != miss.Header.Get("Date") {
		t.Errorf("HIT Date = %q, want the stored %q", hit.Header.Get("Date"), miss.Header.Get("Date"))
	}
}

func TestRepliesNotFromTheCacheCarryTheOriginsDateOrACurrentOne(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/none") {
			w.Header()["Date"] = nil
		} else {
			w.Header().Set("Date", originDate)
		}
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "body")
	})
	p := newTestApp(t, o.URL)
	tests := []struct{ method, path string }{
		{http.MethodGet, "/pass/dated"},  // streamed: not storable
		{http.MethodPost, "/pass/dated"}, // passed through
		{http.MethodGet, "/pass/none"},
		{http.MethodPost, "/pass/none"},
	}
	for _, tt := range tests {
		before := time.Now().Truncate(time.Second)
		r := p.do(t, tt.method, tt.path, strings.NewReader(""))
		if r.StatusCode != 200 {
			t.Fatalf("%s %s: status %d", tt.method, tt.path, r.StatusCode)
		}
		got := r.Header.Values("Date")
		if len(got) != 1 {
			t.Fatalf("%s %s: Date = %q, want one", tt.method, tt.path, got)
		}
		if strings.HasSuffix(tt.path, "/dated") {
			if got[0] != originDate {
				t.Errorf("%s %s: Date = %q, want the origin's %q", tt.method, tt.path, got[0], originDate)
			}
			continue
		}
		d, err := http.ParseTime(got[0])
		if err != nil || d.Before(before) || d.After(time.Now()) {
			t.Errorf("%s %s: Date = %q, want the current time", tt.method, tt.path, got[0])
		}
	}
	// swrproxy's own replies (an unknown /_swr/ path, an origin that is down) get a current one.
	p = newTestApp(t, "http://127.0.0.1:1")
	for _, target := range []string{"/_swr/nothing", "/down"} {
		r := p.get(t, target)
		if _, err := http.ParseTime(r.Header.Get("Date")); err != nil {
			t.Errorf("GET %s: status %d, Date = %q: %v", target, r.StatusCode, r.Header.Get("Date"), err)
		}
	}
}

// TestAnIfModifiedSinceThatIsNotAnHTTPDateIsIgnored: RFC 9110 §13.1.3 says a recipient MUST
// ignore an If-Modified-Since whose value is not a valid HTTP-date; Go's lenient parser took a
// one-digit hour, so a malformed date got a 304.
func TestAnIfModifiedSinceThatIsNotAnHTTPDateIsIgnored(t *testing.T) {
	const lastModified = "Mon, 01 Jan 2024 10:00:00 GMT"
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Last-Modified", lastModified)
		w.Write([]byte("body"))
	}))
	defer origin.Close()
	app := proxy.NewApp(newHandler(t, origin.URL), nil)
	send := func(ims string) int {
		req := httptest.NewRequest(http.MethodGet, "/ims", nil)
		if ims != "" {
			req.Header.Set("If-Modified-Since", ims)
		}
		res, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	send("") // fill
	if got := send("Tue, 02 Jan 2024 10:00:00 GMT"); got != http.StatusNotModified {
		t.Errorf("a valid later If-Modified-Since: %d, want 304", got)
	}
	for _, ims := range []string{"Tue, 02 Jan 2024 1:00:00 GMT", "Tue, 02 Jan 2024 10:00:00 UTC", "Tue,  02 Jan 2024 10:00:00 GMT"} {
		if got := send(ims); got != http.StatusOK {
			t.Errorf("If-Modified-Since %q (not an HTTP-date): %d, want 200", ims, got)
		}
	}
}
