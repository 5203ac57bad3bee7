package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// Web cache deception (issue 7, point 3): a page chosen by the client's cookies, which the origin
// sends without Cache-Control, must never be stored and served to someone else.

// accountOrigin answers /account with the account of the session in the Cookie, or a login page,
// without Cache-Control, the way many frameworks do. lastModified, when set, is sent as
// Last-Modified (which would give the page heuristic freshness, RFC 9111 §4.2.2).
func accountOrigin(t *testing.T, lastModified time.Time) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if !lastModified.IsZero() {
			w.Header().Set("Last-Modified", lastModified.UTC().Format(http.TimeFormat))
		}
		c, err := r.Cookie("session")
		if err != nil {
			fmt.Fprint(w, "please log in")
			return
		}
		fmt.Fprintf(w, "account of %s: card 4111-%s", c.Value, c.Value)
	})
}

func TestDeceptionCookiePageWithoutCacheControlIsNeverServedToOthers(t *testing.T) {
	t.Parallel()
	for _, ttl := range []string{"0", "30s", "60s"} { // the new default, an explicit TTL, the old default
		for _, lm := range []bool{false, true} {
			t.Run(fmt.Sprintf("SWR_DEFAULT_TTL=%s,Last-Modified=%v", ttl, lm), func(t *testing.T) {
				var modified time.Time
				if lm {
					modified = time.Now().Add(-24 * time.Hour)
				}
				o := accountOrigin(t, modified)
				p := startProxy(t, o.URL, map[string]string{"SWR_DEFAULT_TTL": ttl})

				r := get(t, p.URL+"/account", "Cookie", "session=alice")
				if r.StatusCode != 200 || r.Body != "account of alice: card 4111-alice" {
					t.Fatalf("alice got %d %q, want her account", r.StatusCode, r.Body)
				}
				if got, want := r.Header.Get("Cache-Status"), "swrproxy; fwd=miss; detail=cookie"; got != want {
					t.Errorf("alice's Cache-Status = %q, want %q (not stored: a request with Cookie)", got, want)
				}

				for i, c := range []struct{ who, cookie, body string }{
					{"bob", "session=bob", "account of bob: card 4111-bob"},
					{"nobody", "", "please log in"},
				} {
					var hdr []string
					if c.cookie != "" {
						hdr = []string{"Cookie", c.cookie}
					}
					r := get(t, p.URL+"/account", hdr...)
					if strings.Contains(r.Body, "alice") {
						t.Fatalf("%s got alice's page: X-Cache=%s Cache-Status=%q body %q",
							c.who, r.Header.Get("X-Cache"), r.Header.Get("Cache-Status"), r.Body)
					}
					if r.StatusCode != 200 || r.Body != c.body {
						t.Fatalf("%s got %d %q, want 200 %q", c.who, r.StatusCode, r.Body, c.body)
					}
					if n, want := o.hits.Load(), int64(i+2); n != want {
						t.Fatalf("after %s's request the origin saw %d requests, want %d (each one reaches it)", c.who, n, want)
					}
				}
			})
		}
	}
}

func TestCookieRequestIsStoredWhenTheOriginGivesMaxAge(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "the same for everyone")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_DEFAULT_TTL": "0"})

	r := get(t, p.URL+"/news", "Cookie", "session=alice")
	expect(t, r, 200, "MISS", "the same for everyone")
	if got, want := r.Header.Get("Cache-Status"), "swrproxy; fwd=miss; stored"; got != want {
		t.Errorf("Cache-Status = %q, want %q", got, want)
	}
	expect(t, get(t, p.URL+"/news", "Cookie", "session=bob"), 200, "HIT", "the same for everyone")
	expect(t, get(t, p.URL+"/news"), 200, "HIT", "the same for everyone")
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
}

func TestCookieRequestWithPublicGetsHeuristicFreshnessFromLastModified(t *testing.T) {
	t.Parallel()
	// RFC 9111 §4.2.2: public marks the response explicitly cacheable, so the Last-Modified
	// heuristic may apply; the origin vouches that the cookie did not choose the page.
	modified := time.Now().Add(-10 * 24 * time.Hour)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public")
		w.Header().Set("Last-Modified", modified.UTC().Format(http.TimeFormat))
		fmt.Fprint(w, "logo")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_DEFAULT_TTL": "0"})

	expect(t, get(t, p.URL+"/logo.svg", "Cookie", "_ga=1"), 200, "MISS", "logo")
	expect(t, get(t, p.URL+"/logo.svg"), 200, "HIT", "logo")
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
}

func TestHeuristicFreshnessFromLastModifiedWithTheDefaultTTLOff(t *testing.T) {
	t.Parallel()
	modified := time.Now().Add(-10 * time.Hour) // a tenth: fresh for an hour
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/report.csv":
			w.Header().Set("Last-Modified", modified.UTC().Format(http.TimeFormat))
			fmt.Fprint(w, "a,b")
		default: // no Cache-Control, no validator: nothing to base a lifetime on
			fmt.Fprint(w, "dynamic")
		}
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_DEFAULT_TTL": "0"})

	r := get(t, p.URL+"/report.csv")
	expect(t, r, 200, "MISS", "a,b")
	if got, want := r.Header.Get("Cache-Status"), "swrproxy; fwd=miss; stored"; got != want {
		t.Errorf("Cache-Status = %q, want %q", got, want)
	}
	expect(t, get(t, p.URL+"/report.csv"), 200, "HIT", "a,b")
	if n := o.hits.Load(); n != 1 {
		t.Fatalf("origin saw %d requests, want 1", n)
	}

	r = get(t, p.URL+"/dynamic")
	expect(t, r, 200, "BYPASS", "dynamic")
	if got, want := r.Header.Get("Cache-Status"), "swrproxy; fwd=miss; detail=no-freshness"; got != want {
		t.Errorf("Cache-Status = %q, want %q", got, want)
	}
	get(t, p.URL+"/dynamic")
	if n := o.hits.Load(); n != 3 {
		t.Errorf("origin saw %d requests, want 3 (a response without freshness or validator is not stored)", n)
	}
}

func TestExplicitDefaultTTLCachesForRequestsWithoutCookieOnly(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "page %s", r.URL.Path) // no Cache-Control, no validator
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_DEFAULT_TTL": "30s"})

	expect(t, get(t, p.URL+"/a"), 200, "MISS", "page /a")
	expect(t, get(t, p.URL+"/a"), 200, "HIT", "page /a")
	if n := o.hits.Load(); n != 1 {
		t.Fatalf("origin saw %d requests, want 1: SWR_DEFAULT_TTL=30s stores a response the origin says nothing about", n)
	}

	r := get(t, p.URL+"/b", "Cookie", "session=alice")
	expect(t, r, 200, "BYPASS", "page /b")
	if got, want := r.Header.Get("Cache-Status"), "swrproxy; fwd=miss; detail=cookie"; got != want {
		t.Errorf("Cache-Status = %q, want %q", got, want)
	}
	get(t, p.URL+"/b")
	if n := o.hits.Load(); n != 3 {
		t.Errorf("origin saw %d requests, want 3: SWR_DEFAULT_TTL must not apply to a request with Cookie", n)
	}
}

// A stale entry stored for everyone and revalidated by a request with Cookie: the origin's 304
// renews it (the body was shareable when stored); a Cookie must not turn that into a failure.
func TestCookieRevalidationAnswered304KeepsTheEntry(t *testing.T) {
	t.Parallel()
	lm := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", lm)
		w.Header().Set("Date", lm) // Date = Last-Modified: heuristic lifetime 0, stale at once
		if r.Header.Get("If-Modified-Since") == lm {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "public page")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_DEFAULT_TTL": "0", "SWR_STALE_WHILE_REVALIDATE": "0", "SWR_STALE_IF_ERROR": "0"})
	expect(t, get(t, p.URL+"/page"), 200, "MISS", "public page")
	r := get(t, p.URL+"/page", "Cookie", "_ga=1")
	expect(t, r, 200, "MISS", "public page")
	if got := r.Header.Get("Cache-Status"); got != "swrproxy; fwd=stale; fwd-status=304; stored" {
		t.Errorf("Cache-Status = %q, want the entry revalidated", got)
	}
	if r := get(t, p.URL+"/page"); r.Body != "public page" || r.Header.Get("X-Cache") == "BYPASS" {
		t.Errorf("after the cookie's revalidation: %s %q, want the kept entry", r.Header.Get("X-Cache"), r.Body)
	}
}

// A copy stored for everyone under a guessed lifetime is not served to a request with Cookie as
// if fresh: that request asks the origin itself (and a 304 would confirm the copy).
func TestCookieRequestIsNotServedAHeuristicallyFreshCopy(t *testing.T) {
	t.Parallel()
	o := accountOrigin(t, time.Now().Add(-24*time.Hour))
	p := startProxy(t, o.URL, map[string]string{"SWR_DEFAULT_TTL": "0"})
	expect(t, get(t, p.URL+"/account"), 200, "MISS", "please log in") // stored: a tenth of a day
	expect(t, get(t, p.URL+"/account"), 200, "HIT", "please log in")
	r := get(t, p.URL+"/account", "Cookie", "session=bob")
	if r.Body != "account of bob: card 4111-bob" {
		t.Fatalf("bob got %s %q (Cache-Status %q), want his account: a lifetime we guessed says nothing about his cookie",
			r.Header.Get("X-Cache"), r.Body, r.Header.Get("Cache-Status"))
	}
}

// One request with a cookie whose answer is not storable must not mark the URL hit-for-pass
// for everyone (security review: one cookie request every 10 s turned caching off).
func TestCookieRequestDoesNotStopCachingForOthers(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "page") // no Cache-Control, no validator
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_DEFAULT_TTL": "30s"})
	expect(t, get(t, p.URL+"/p", "Cookie", "session=alice"), 200, "BYPASS", "page")
	r := get(t, p.URL+"/p")
	expect(t, r, 200, "MISS", "page") // stored for everyone: the cookie said nothing about the URL
	expect(t, get(t, p.URL+"/p"), 200, "HIT", "page")
}

// phpLikeOrigin: anonymous visitors get a cacheable page (anon sets its fields); a request with a
// session cookie starts a session and gets no-store (PHP session_start's default headers).
func phpLikeOrigin(t *testing.T, anon func(h http.Header)) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if _, err := r.Cookie("PHPSESSID"); err == nil {
			w.Header().Set("Cache-Control", "no-store, no-cache, must-revalidate")
			fmt.Fprint(w, "session page")
			return
		}
		anon(w.Header())
		fmt.Fprint(w, "public page")
	})
}

// The answer to one client's cookie says nothing about the copy everyone else shares: a no-store
// answer to a request with Cookie must not delete it (security review: any client could purge
// such a page at will, and every purge cost a blocking refill).
func TestANoStoreAnswerToACookieRequestDoesNotDeleteTheSharedCopy(t *testing.T) {
	t.Parallel()
	lm := time.Now().Add(-240 * time.Hour).UTC().Format(http.TimeFormat) // heuristic: a day fresh
	o := phpLikeOrigin(t, func(h http.Header) { h.Set("Last-Modified", lm) })
	p := startProxy(t, o.URL, nil)
	expect(t, get(t, p.URL+"/home"), 200, "MISS", "public page")
	for range 3 {
		expect(t, get(t, p.URL+"/home", "Cookie", "PHPSESSID=attacker"), 200, "BYPASS", "session page")
		expect(t, get(t, p.URL+"/home"), 200, "HIT", "public page")
	}

	// The same for a stale copy revalidated by a client with a cookie.
	q := phpLikeOrigin(t, func(h http.Header) { h.Set("Cache-Control", "public, max-age=1"); h.Set("ETag", `"v1"`) })
	p = startProxy(t, q.URL, map[string]string{"SWR_REFRESH_WINDOW": "0"})
	expect(t, get(t, p.URL+"/home"), 200, "MISS", "public page")
	testenv.WaitFor(t, 3*time.Second, "the copy to go stale", func() bool {
		return get(t, p.URL+"/home", "Cookie", "PHPSESSID=attacker").Header.Get("X-Cache") == "STALE"
	})
	testenv.WaitFor(t, 3*time.Second, "the attacker's revalidation", func() bool { return q.hits.Load() >= 2 })
	if r := get(t, p.URL+"/home"); r.Body != "public page" || r.Header.Get("X-Cache") == "MISS" {
		t.Fatalf("after a cookie request revalidated the copy: %s %q, want the shared copy (STALE or HIT)", r.Header.Get("X-Cache"), r.Body)
	}
}

// A request with Cookie does not lead the fetch anonymous requests of the key wait on, in this
// instance or (through the Redis lock) another: its answer is often private and slow (security
// review: an anonymous miss waited 2.9 s behind a cookie request's private page).
func TestAnonymousMissesDoNotWaitBehindACookieRequest(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	release := make(chan struct{})
	var cookieSeen atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Cookie") != "" {
			cookieSeen.Add(1)
			<-release // a slow, private page
			w.Header().Set("Cache-Control", "private")
			fmt.Fprint(w, "personal page")
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprint(w, "public page")
	})
	env := map[string]string{"SWR_REDIS_URL": rs.URL()}
	a, b := startProxy(t, o.URL, env), startProxy(t, o.URL, env)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	var cookies []chan reply
	for i, victim := range []string{a.URL, b.URL} {
		path := fmt.Sprintf("/home-%d", i)
		cookie := make(chan reply, 1)
		go func() { cookie <- do(http.MethodGet, a.URL+path, "Cookie", "sid=someone") }()
		testenv.WaitFor(t, 5*time.Second, "the cookie request at the origin", func() bool { return cookieSeen.Load() == int64(i+1) })
		anon := make(chan reply, 1)
		go func() { anon <- do(http.MethodGet, victim+path) }()
		select {
		case r := <-anon:
			if r.Body != "public page" {
				t.Errorf("anonymous request %d: %d %q", i, r.StatusCode, r.Body)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("anonymous request %d waits behind the cookie request", i)
		}
		cookies = append(cookies, cookie)
	}
	once.Do(func() { close(release) })
	for i, c := range cookies {
		if r := <-c; r.Body != "personal page" {
			t.Errorf("cookie request %d: %d %q, want its own page", i, r.StatusCode, r.Body)
		}
	}
}
