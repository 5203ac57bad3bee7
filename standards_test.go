package main

// RFC 9111 end to end: the origin-only profile (no default lifetime, no default stale windows),
// one swrproxy with a real Redis in front of a real origin whose paths each answer with one rule
// under test. Every case asks twice and checks whether the second answer was reused.

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

func TestTheRFC9111RulesHoldEndToEnd(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	future := time.Now().Add(time.Hour).UTC()
	lastModified := time.Now().Add(-240 * time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		status int
		header map[string]string
		req    [2][]string // the two requests' fields
		reused bool
		check  func(t *testing.T, second reply)
	}{
		{name: "RFC 9213 §2: CDN-Cache-Control governs swrproxy, Cache-Control goes to the client", status: 200,
			header: map[string]string{"Cache-Control": "no-store", "CDN-Cache-Control": "max-age=60"}, reused: true,
			check: func(t *testing.T, r reply) {
				if got := r.Header.Get("Cache-Control"); got != "no-store" {
					t.Errorf("Cache-Control sent to the client = %q, want the origin's no-store", got)
				}
			}},
		{name: "RFC 9213 §2.1: an invalid CDN-Cache-Control is ignored as a whole", status: 200,
			header: map[string]string{"Cache-Control": "no-store", "CDN-Cache-Control": "max-age=60, =x"}, reused: false},
		{name: "Surrogate-Control max-age governs swrproxy and is never sent to clients", status: 200,
			header: map[string]string{"Cache-Control": "max-age=0", "Surrogate-Control": "max-age=60"}, reused: true,
			check: func(t *testing.T, r reply) {
				if got := r.Header.Get("Surrogate-Control"); got != "" {
					t.Errorf("Surrogate-Control reached the client: %q", got)
				}
			}},
		{name: "RFC 9111 §3: a 503 with explicit freshness is stored (negative caching)", status: 503,
			header: map[string]string{"Cache-Control": "max-age=60"}, reused: true},
		{name: "RFC 6585 §4: a 429 is never stored", status: 429,
			header: map[string]string{"Cache-Control": "max-age=60"}, reused: false},
		{name: "RFC 9111 §5.3: an Expires in the IMF-fixdate format is honoured", status: 200,
			header: map[string]string{"Expires": future.Format(http.TimeFormat)}, reused: true},
		{name: "RFC 9111 §5.3: an Expires that is not an HTTP-date (one-digit hour) means already expired", status: 200,
			header: map[string]string{"Expires": strings.Replace(future.Format("Mon, 02 Jan 2006 15:04:05 GMT"),
				future.Format(" 15:"), fmt.Sprintf(" %d:", future.Hour()%10), 1)}, reused: false},
		{name: "RFC 9111 §5.3: an Expires in another zone than GMT means already expired", status: 200,
			header: map[string]string{"Expires": strings.Replace(future.Format(http.TimeFormat), "GMT", "UTC", 1)}, reused: false},
		{name: "RFC 9111 §5.1: an Age list counts by its first member (7200 > max-age)", status: 200,
			header: map[string]string{"Cache-Control": "max-age=60", "Age": "7200, 0"}, reused: false},
		{name: "RFC 9111 §5.1: an invalid Age is ignored", status: 200,
			header: map[string]string{"Cache-Control": "max-age=60", "Age": "1200a"}, reused: true},
		{name: "RFC 9111 §4.2.2: a 404 gets a heuristic lifetime from Last-Modified", status: 404,
			header: map[string]string{"Last-Modified": lastModified}, reused: true},
		{name: "RFC 9111 §4.2.2: a 302 is not heuristically cacheable", status: 302,
			header: map[string]string{"Last-Modified": lastModified, "Location": "/elsewhere"}, reused: false},
		{name: "RFC 9111 §4.2.2: no heuristic lifetime for a request with Cookie", status: 200,
			header: map[string]string{"Last-Modified": lastModified},
			req:    [2][]string{{"Cookie", "a=1"}, {"Cookie", "a=1"}}, reused: false},
		{name: "RFC 9111 §5.2.2.3: must-understand with a status swrproxy understands overrides no-store", status: 200,
			header: map[string]string{"Cache-Control": "max-age=60, no-store, must-understand"}, reused: true},
		{name: "RFC 9111 §5.2.2.3: must-understand with a status swrproxy does not implement is not stored", status: 299,
			header: map[string]string{"Cache-Control": "max-age=60, no-store, must-understand"}, reused: false},
		{name: "RFC 9111 §5.2: a quoted max-age is accepted", status: 200,
			header: map[string]string{"Cache-Control": `max-age="60"`}, reused: true},
		{name: "RFC 9111 §5.2: a single-quoted max-age is not a lifetime", status: 200,
			header: map[string]string{"Cache-Control": `max-age='60'`}, reused: false},
		{name: "RFC 9111 §4.1: Vary values match after removing white space and folding case", status: 200,
			header: map[string]string{"Cache-Control": "max-age=60", "Vary": "Accept-Language"},
			req:    [2][]string{{"Accept-Language", "en-GB, fr;q=0.5"}, {"Accept-Language", "EN-gb,fr;q=0.5"}}, reused: true},
	}
	var mu sync.Mutex
	hits := map[string]int{}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		var i int
		fmt.Sscanf(r.URL.Path, "/case/%d", &i)
		if i < 0 || i >= len(tests) {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		for k, v := range tests[i].header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(tests[i].status)
		fmt.Fprintf(w, "case %d", i)
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": rs.URL(),
		"SWR_DEFAULT_TTL": "0", "SWR_STALE_WHILE_REVALIDATE": "0", "SWR_STALE_IF_ERROR": "0"})
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := fmt.Sprintf("/case/%d", i)
			var second reply
			for n := range 2 {
				req, _ := http.NewRequest(http.MethodGet, p.URL+path, nil)
				for j := 0; j+1 < len(tt.req[n]); j += 2 {
					req.Header.Set(tt.req[n][j], tt.req[n][j+1])
				}
				res, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b := make([]byte, 64)
				k, _ := res.Body.Read(b)
				res.Body.Close()
				if res.StatusCode != tt.status || string(b[:k]) != fmt.Sprintf("case %d", i) {
					t.Fatalf("request %d: %d %q, want the origin's %d", n+1, res.StatusCode, b[:k], tt.status)
				}
				second = reply{Response: res}
			}
			mu.Lock()
			got := hits[path]
			mu.Unlock()
			want := 2
			if tt.reused {
				want = 1
			}
			if got != want {
				t.Errorf("origin requests = %d, want %d (reused: %v); second answer X-Cache %q, Cache-Status %q",
					got, want, tt.reused, second.Header.Get("X-Cache"), second.Header.Get("Cache-Status"))
			}
			if tt.check != nil {
				tt.check(t, second)
			}
		})
	}
}

// RFC 9111 §4.3.4 end to end: a 304 updates the stored response with the fields it carries and
// keeps the others (Surrogate-Control among them, though clients never see it); a 304 whose
// fields forbid storing still confirms the body, which the revalidating client gets (not a 502)
// before the entry is dropped. Each path is stored already stale (Age equals its lifetime), so
// the second request revalidates at once.
func TestA304RenewsWithTheStoredFieldsAndAnUnstorable304StillAnswers(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	var mu sync.Mutex
	asked := map[string]int{}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked[r.URL.Path]++
		mu.Unlock()
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.Header().Set("Cache-Control", "no-store") // and no Surrogate-Control
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.URL.Path == "/unstorable" {
			w.Header().Set("Cache-Control", "max-age=60")
		} else {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Surrogate-Control", "max-age=60")
		}
		w.Header().Set("Age", "60")
		fmt.Fprint(w, "body of "+r.URL.Path)
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": rs.URL(),
		"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_STALE_IF_ERROR": "0", "SWR_REFRESH_WINDOW": "0"})

	expect(t, get(t, p.URL+"/surrogate"), 200, "MISS", "body of /surrogate")
	r := get(t, p.URL+"/surrogate")
	expect(t, r, 200, "MISS", "body of /surrogate")
	if got := r.Header.Get("Cache-Status"); !strings.Contains(got, "fwd-status=304") {
		t.Errorf("second answer Cache-Status = %q, want a 304 revalidation", got)
	}
	r = get(t, p.URL+"/surrogate")
	expect(t, r, 200, "HIT", "body of /surrogate")
	if got := r.Header.Get("Surrogate-Control"); got != "" {
		t.Errorf("Surrogate-Control reached the client: %q", got)
	}

	expect(t, get(t, p.URL+"/unstorable"), 200, "MISS", "body of /unstorable")
	r = get(t, p.URL+"/unstorable")
	expect(t, r, 200, "BYPASS", "body of /unstorable") // relayed, not stored
	if got := r.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("the confirmed body's Cache-Control = %q, want the 304's no-store", got)
	}
	expect(t, get(t, p.URL+"/unstorable"), 200, "BYPASS", "body of /unstorable") // dropped, and passed for a while

	mu.Lock()
	defer mu.Unlock()
	if asked["/surrogate"] != 2 || asked["/unstorable"] != 3 {
		t.Errorf("origin requests = %v, want /surrogate 2 (fill, 304) and /unstorable 3 (fill, 304, fill)", asked)
	}
}

// RFC 9111 §4.2.1 with RFC 5861 §4: an origin error with explicit freshness does not replace a
// good copy that may be served on error, and the origin is asked once for that error's lifetime,
// not once per client: the requests meanwhile get the good copy without an origin request.
func TestAFreshErrorOverAGoodCopyIsAskedOncePerItsLifetime(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	var mu sync.Mutex
	asked := 0
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked++
		n := asked
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Cache-Control", "max-age=60, stale-if-error=3600")
			w.Header().Set("Age", "60") // stored stale: the next request revalidates
			fmt.Fprint(w, "good")
			return
		}
		w.Header().Set("Cache-Control", "max-age=10")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "down")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": rs.URL(),
		"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/k"), 200, "MISS", "good")
	for i := range 4 {
		r := get(t, p.URL+"/k")
		expect(t, r, 200, "STALE", "good")
		if got := r.Header.Get("Cache-Status"); got != "swrproxy; fwd=stale; detail=stale-if-error" {
			t.Errorf("request %d: Cache-Status = %q, want the good copy served on error", i+2, got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if asked != 2 {
		t.Errorf("origin requests = %d, want 2 (the fill, then one 503 for its 10 s)", asked)
	}
}

// The failing mark is no lever for one client over the others: an origin error to a request
// with Cookie (the origin failing on that user's malformed session, say) does not stop the other
// users' revalidations; they get the origin's new version at once (security review).
func TestAnErrorToOneUsersRequestDoesNotStopTheOthersRevalidations(t *testing.T) {
	t.Parallel()
	var version atomic.Int64
	version.Store(1)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Cookie"), "malformed") {
			w.Header().Set("Cache-Control", "max-age=600")
			http.Error(w, "error for this client only", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60, stale-if-error=86400")
		w.Header().Set("Age", "60") // stored stale: every request revalidates
		fmt.Fprintf(w, "v%d", version.Load())
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_STALE_WHILE_REVALIDATE": "0", "SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/page"), 200, "MISS", "v1")
	version.Store(2)
	if r := get(t, p.URL+"/page", "Cookie", "session=malformed"); r.StatusCode >= 500 {
		t.Fatalf("the user with the bad cookie got %d, want the good copy served on error", r.StatusCode)
	}
	for i := range 3 {
		if r := get(t, p.URL+"/page"); r.Body != "v2" {
			t.Errorf("request %d after the other user's error: %q (%s), want the origin's v2", i, r.Body, r.Header.Get("Cache-Status"))
		}
	}
}
