package main

// Cache poisoning: request fields that change the origin's answer without being part of the key
// never reach the origin on a cacheable fill; keys with a host are unambiguous; credentials a
// response varies on are never stored in clear or replayed.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/rawhttp"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// headerLog is a real origin that keeps the request fields of every request it gets.
type headerLog struct {
	mu   sync.Mutex
	seen []http.Header
}

func (l *headerLog) add(h http.Header) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, h.Clone())
}

func (l *headerLog) all() []http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]http.Header(nil), l.seen...)
}

// forwardingSpoofs are fields a client sets to make a framework believe another scheme, host,
// URL, method or client address (the hardening issue, point 4).
var forwardingSpoofs = []string{
	"X-Forwarded-Scheme", "http", "X-Forwarded-Ssl", "off", "Front-End-Https", "off",
	"X-Original-Host", "evil.example", "X-Forwarded-Uri", "/admin", "X-HTTP-Host-Override", "evil.example",
	"X-Forwarded-Port", "8443", "X-Forwarded-Prefix", "/evil", "Forwarded", "for=6.6.6.6;proto=https",
	"X-Original-URL", "/admin", "X-Rewrite-URL", "/admin", "X-HTTP-Method-Override", "DELETE",
	"X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https", "X-Real-IP", "6.6.6.6",
	"True-Client-IP", "6.6.6.6", "X-Url-Scheme", "http", "X-Forwarded-For", "6.6.6.6",
}

func TestARailsStyleRedirectCannotBePoisonedIntoTheCache(t *testing.T) {
	t.Parallel()
	// Like Rack/Rails behind a proxy: X-Forwarded-Scheme: http (or X-Forwarded-Ssl: off) makes a
	// force_ssl app answer a cacheable 301. Stored, everyone would get the redirect (a loop).
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.Header.Get("X-Forwarded-Scheme") == "http" || r.Header.Get("X-Forwarded-Ssl") == "off" ||
			r.Header.Get("Front-End-Https") == "off" {
			w.Header().Set("Location", "https://www.example.com"+r.URL.Path)
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		fmt.Fprint(w, "the page")
	})
	p := startProxy(t, o.URL, nil)
	n := startNginx(t, strings.TrimPrefix(p.URL, "http://"))
	for _, base := range []string{p.URL, n} {
		for i := 0; i+1 < len(forwardingSpoofs); i += 2 {
			path := fmt.Sprintf("/page-%d", i)
			r := get(t, base+path, forwardingSpoofs[i], forwardingSpoofs[i+1])
			if r.StatusCode != 200 || r.Body != "the page" {
				t.Fatalf("%s with %s: %d %q, want the page", base, forwardingSpoofs[i], r.StatusCode, r.Body)
			}
			if r := get(t, base+path); r.StatusCode != 200 || r.Header.Get("X-Cache") != "HIT" {
				t.Fatalf("%s: the next client got %d %s, want the page from cache", base, r.StatusCode, r.Header.Get("X-Cache"))
			}
		}
	}
}

func TestFillsForwardOnlyTheForwardingFieldsSwrproxyOrNginxSet(t *testing.T) {
	t.Parallel()
	var log headerLog
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		log.add(r.Header)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "ok")
	})
	// The test connects from 127.0.0.1: trust nobody, as for a client on the internet.
	p := startProxy(t, o.URL, map[string]string{"SWR_TRUSTED_PROXIES": ""})
	q := startProxy(t, o.URL, nil) // trusts loopback, where nginx is
	n := startNginx(t, strings.TrimPrefix(q.URL, "http://"))
	get(t, p.URL+"/direct", forwardingSpoofs...)
	get(t, n+"/via-nginx", forwardingSpoofs...)
	do(http.MethodPost, p.URL+"/post", forwardingSpoofs...) // a pass-through from an untrusted peer
	do(http.MethodPost, n+"/post", forwardingSpoofs...)     // through nginx, which clears them

	seen := log.all()
	if len(seen) != 4 {
		t.Fatalf("origin got %d requests, want 4", len(seen))
	}
	for i, h := range seen {
		for j := 0; j+1 < len(forwardingSpoofs); j += 2 {
			name, spoof := forwardingSpoofs[j], forwardingSpoofs[j+1]
			for _, v := range h.Values(name) {
				if strings.Contains(v, spoof) && !(name == "X-Forwarded-For" && i == 3) {
					t.Errorf("request %d: the origin got the client's %s: %q", i, name, v)
				}
			}
		}
	}
	// swrproxy states what it knows itself to an untrusted peer.
	if got := seen[0].Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("fill from an untrusted peer: X-Forwarded-For %q, want only the peer", got)
	}
	if got := seen[0].Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("fill from an untrusted peer: X-Forwarded-Proto %q, want http", got)
	}
	if got := seen[2].Get("X-Forwarded-Host"); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("pass-through from an untrusted peer: X-Forwarded-Host %q, want the request's Host", got)
	}
	// Through nginx (trusted): the client's address as nginx saw it, nginx's scheme and X-Real-IP;
	// a pass-through carries nginx's whole list, then swrproxy's peer.
	if got := seen[1].Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("fill through nginx: X-Forwarded-For %q, want only the client's address as nginx saw it", got)
	}
	if got := seen[3].Get("X-Forwarded-For"); got != "6.6.6.6, 127.0.0.1, 127.0.0.1" {
		t.Errorf("pass-through through nginx: X-Forwarded-For %q, want the client's list, nginx's peer, then swrproxy's", got)
	}
	if got := seen[1].Get("X-Real-Ip"); got != "127.0.0.1" {
		t.Errorf("fill through nginx: X-Real-IP %q, want nginx's $remote_addr", got)
	}
}

func TestAVariedFieldSentOnSeveralLinesIsForwardedAsTheOneValueItIsKeyedOn(t *testing.T) {
	t.Parallel()
	var log headerLog
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		log.add(r.Header)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%s", strings.Join(r.Header.Values("Accept-Language"), "|"))
	})
	p := startProxy(t, o.URL, nil)
	addr := strings.TrimPrefix(p.URL, "http://")
	res, err := rawhttp.Exchange(addr, "GET /l HTTP/1.1\r\nHost: x\r\nAccept-Language: en\r\nAccept-Language: fr\r\n\r\n", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if b := res.Bodies(); len(b) != 1 || b[0] != "lang=en, fr" {
		t.Fatalf("two Accept-Language lines: %q, want the origin to get one line, en, fr", b)
	}
	expect(t, get(t, p.URL+"/l", "Accept-Language", "en, fr"), 200, "HIT", "lang=en, fr")
	expect(t, get(t, p.URL+"/l", "Accept-Language", "en"), 200, "MISS", "lang=en")
	expect(t, get(t, p.URL+"/l", "Accept-Language", "fr"), 200, "MISS", "lang=fr")
	if n := len(log.all()); n != 3 {
		t.Errorf("origin got %d requests, want 3 (one per variant)", n)
	}
}

func TestKeysWithTheHostAreUnambiguous(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "%s %s", r.Header.Get("X-Forwarded-Host"), r.URL.Path)
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_KEY_HOST": "true", "SWR_INVALIDATE_SECRET": secret})
	addr := strings.TrimPrefix(p.URL, "http://")
	send := func(host, path string) rawhttp.Result {
		t.Helper()
		res, err := rawhttp.Exchange(addr, "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n", 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Host: victim.com/evil + /x would have been stored as victim.com + /evil/x.
	if res := send("victim.com/evil", "/x"); len(res.Responses) != 1 || res.Responses[0].StatusCode != 400 {
		t.Fatalf("Host victim.com/evil: %q, want 400", res.Bodies())
	}
	if b := send("victim.com", "/evil/x").Bodies(); len(b) != 1 || b[0] != "victim.com /evil/x" {
		t.Fatalf("victim.com /evil/x: %q", b)
	}
	// The same host in another spelling is the same key.
	if res := send("VICTIM.com.:80", "/evil/x"); len(res.Responses) != 1 || res.Responses[0].Header.Get("X-Cache") != "HIT" {
		t.Fatalf("VICTIM.com.:80: %q %v, want a HIT of the same key", res.Bodies(), res.Responses)
	}
	// The key lists, and can be purged, as host, separator, target; the older host/path form of
	// the invalidation API still works.
	r := get(t, p.URL+"/_swr/keys", "Authorization", "Bearer "+secret)
	if !strings.Contains(r.Body, `"victim.com /evil/x"`) {
		t.Fatalf("/_swr/keys: %s", r.Body)
	}
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/_swr/invalidate", strings.NewReader(`{"keys":["VICTIM.com:80/evil/x"],"mode":"clear"}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if b := send("victim.com", "/evil/x"); len(b.Responses) != 1 || b.Responses[0].Header.Get("X-Cache") != "MISS" {
		t.Fatalf("after invalidating VICTIM.com:80/evil/x: %v, want a MISS", b.Responses)
	}
}

// A refresh of a key that holds the host (SWR_KEY_HOST) splits it as lookups build it: the
// origin is asked for that host's target, never for a path made of the host's tail.
func TestARefreshOfAHostKeyedEntryAsksForItsOwnHostAndTarget(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var asked []string // X-Forwarded-Host and request target of each origin request
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Header.Get("X-Forwarded-Host")+" "+r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "body")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_KEY_HOST": "true", "SWR_INVALIDATE_SECRET": secret})
	addr := strings.TrimPrefix(p.URL, "http://")
	res, err := rawhttp.Exchange(addr, "GET /evil/x?a=1 HTTP/1.1\r\nHost: Victim.COM.:80\r\n\r\n", 300*time.Millisecond)
	if err != nil || len(res.Responses) != 1 || res.Responses[0].StatusCode != 200 {
		t.Fatalf("GET: %v %q", err, res.Bodies())
	}
	if code, body := postJSON(t, p.URL+"/_swr/invalidate", secret, `{"keys":["victim.com /evil/x?a=1"],"mode":"refresh"}`); code != 200 {
		t.Fatalf("refresh: %d %v", code, body)
	}
	testenv.WaitFor(t, 5*time.Second, "the refresh's origin request", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(asked) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if want := "victim.com /evil/x?a=1"; asked[0] != want || asked[1] != want {
		t.Errorf("origin asked %q, want the fill and the refresh both for %q", asked, want)
	}
}

func TestCredentialsAResponseVariesOnAreNeverStoredNorReplayed(t *testing.T) {
	// Not parallel: its entries are fresh for one second only.
	rs := redistest.Start(t)
	var log headerLog
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		log.add(r.Header)
		// Shareable per user: explicit freshness, varied on the credentials.
		w.Header().Set("Cache-Control", "public, max-age=1, stale-while-revalidate=30")
		w.Header().Set("Vary", "Cookie, Authorization")
		user := "anonymous"
		switch {
		case strings.Contains(r.Header.Get("Cookie"), "alice"):
			user = "alice"
		case strings.Contains(r.Header.Get("Cookie"), "bob"):
			user = "bob"
		case r.Header.Get("Authorization") != "":
			user = "bearer"
		}
		fmt.Fprintf(w, "for %s", user)
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": rs.URL(), "SWR_INVALIDATE_SECRET": secret,
		"SWR_REFRESH_WINDOW": "1m"})
	const cookie, bob, token = "session=alice-0c9d2f", "session=bob-55aa11", "Bearer tok-7e1b44"
	expect(t, get(t, p.URL+"/me", "Cookie", cookie), 200, "MISS", "for alice")
	expect(t, get(t, p.URL+"/me", "Cookie", cookie), 200, "HIT", "for alice")
	expect(t, get(t, p.URL+"/me", "Cookie", bob), 200, "MISS", "for bob")
	expect(t, get(t, p.URL+"/me", "Authorization", token), 200, "MISS", "for bearer")

	// Nothing in Redis holds a credential: not the field names, not the stored entries.
	ctx := context.Background()
	rdb := rs.Client()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if typ, _ := rdb.Type(ctx, k).Result(); typ != "hash" {
			continue
		}
		fields, err := rdb.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range fields {
			for _, secret := range []string{"0c9d2f", "7e1b44", "55aa11"} {
				if strings.Contains(f, secret) || strings.Contains(v, secret) {
					t.Errorf("redis key %s field %q holds the credential %q", k, f, secret)
				}
			}
		}
	}

	// Once stale, the copy is revalidated with the client's own request; an invalidation refresh
	// does not ask for these variants (it would need the credentials): it refreshes none.
	testenv.WaitFor(t, 5*time.Second, "alice's copy to be served stale", func() bool {
		return get(t, p.URL+"/me", "Cookie", cookie).Header.Get("X-Cache") == "STALE"
	})
	testenv.WaitFor(t, 5*time.Second, "the revalidation of alice's copy", func() bool { return revalidated(log.all(), cookie) })
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/_swr/invalidate", strings.NewReader(`{"keys":["/me"],"mode":"refresh"}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var reply struct{ Matched, Refreshing int }
	json.NewDecoder(res.Body).Decode(&reply)
	res.Body.Close()
	if reply.Matched != 1 || reply.Refreshing != 0 {
		t.Errorf("refresh of /me: matched %d, refreshing %d; want 1 and 0 (no background fetch of a credential variant)", reply.Matched, reply.Refreshing)
	}
	for i, h := range log.all() {
		if c := h.Get("Cookie"); c != "" && c != cookie && c != bob {
			t.Errorf("request %d carried Cookie %q", i, c)
		}
		if a := h.Get("Authorization"); a != "" && a != token {
			t.Errorf("request %d carried Authorization %q", i, a)
		}
		if h.Get("Cookie") == "" && h.Get("Authorization") == "" {
			t.Errorf("request %d came from a background refresh without the credentials the variant needs: %v", i, h)
		}
	}
}

// revalidated reports whether more than one request with the cookie reached the origin.
func revalidated(seen []http.Header, cookie string) bool {
	n := 0
	for _, h := range seen {
		if h.Get("Cookie") == cookie {
			n++
		}
	}
	return n >= 2
}

// An origin that answers by scheme and says so (Vary: X-Forwarded-Proto) gets one variant per
// scheme, keyed on the scheme swrproxy forwards: a trusted proxy's, never a client's.
func TestTheSchemeAnOriginVariesOnIsSwrproxysNotTheClients(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "X-Forwarded-Proto")
		if r.Header.Get("X-Forwarded-Proto") != "https" {
			w.WriteHeader(http.StatusForbidden) // a force-SSL app would redirect; the test client would follow
			fmt.Fprint(w, "use https")
			return
		}
		fmt.Fprint(w, "secure page")
	})
	trusted := startProxy(t, o.URL, nil) // loopback is trusted: like nginx serving http and https
	expect(t, get(t, trusted.URL+"/s", "X-Forwarded-Proto", "http"), 403, "MISS", "use https")
	expect(t, get(t, trusted.URL+"/s", "X-Forwarded-Proto", "https"), 200, "MISS", "secure page")
	expect(t, get(t, trusted.URL+"/s", "X-Forwarded-Proto", "https"), 200, "HIT", "secure page")
	expect(t, get(t, trusted.URL+"/s", "X-Forwarded-Proto", "http"), 403, "HIT", "use https")

	// From an untrusted client the scheme is swrproxy's own listener's: http, whatever it says.
	untrusted := startProxy(t, o.URL, map[string]string{"SWR_TRUSTED_PROXIES": ""})
	expect(t, get(t, untrusted.URL+"/u", "X-Forwarded-Proto", "https"), 403, "MISS", "use https")
	expect(t, get(t, untrusted.URL+"/u", "X-Forwarded-Proto", "https"), 403, "HIT", "use https")
	if n := o.hits.Load(); n != 3 {
		t.Errorf("origin got %d requests, want 3 (two variants, then one)", n)
	}
}

// A field the request's Connection names is hop-by-hop: the origin never sees it, so the variant
// is the one without it, at lookup as at store (newcomer review: every such request missed).
func TestAVariedFieldNamedInConnectionCountsAsAbsent(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%q", r.Header.Get("Accept-Language"))
	})
	p := startProxy(t, o.URL, nil)
	addr := strings.TrimPrefix(p.URL, "http://")
	for i, want := range []string{"MISS", "HIT", "HIT"} {
		res, err := rawhttp.Exchange(addr, "GET /l HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Accept-Language\r\nAccept-Language: fr\r\n\r\n", 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Responses) != 1 || res.Responses[0].Header.Get("X-Cache") != want || res.Responses[0].Body != `lang=""` {
			t.Fatalf("request %d: %v %q, want %s lang=\"\"", i, res.Responses, res.Bodies(), want)
		}
	}
	expect(t, get(t, p.URL+"/l"), 200, "HIT", `lang=""`) // the same variant as a request without the field
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin got %d requests, want 1", n)
	}
}

func TestUnkeyedRequestFieldsCannotPoisonTheCache(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		host := r.Header.Get("X-Forwarded-Host")
		if host == "" {
			host = "www.example.com"
		}
		fmt.Fprintf(w, `<script src="https://%s/app.js"></script> %s %s`, host, r.Header.Get("X-Original-Url"), r.Header.Get("X-Forwarded-Proto"))
	})
	p := startProxy(t, o.URL, nil)
	r := get(t, p.URL+"/page", "X-Forwarded-Host", "evil.example", "X-Original-URL", "/admin", "X-Forwarded-Proto", "gopher")
	expect(t, r, 200, "MISS", `<script src="https://www.example.com/app.js"></script>  http`)
	expect(t, get(t, p.URL+"/page"), 200, "HIT", `<script src="https://www.example.com/app.js"></script>  http`)

	// With the host in the key, the origin may see it: each host has its own entry.
	q := startProxy(t, o.URL, map[string]string{"SWR_KEY_HOST": "true"})
	r = get(t, q.URL+"/page", "X-Forwarded-Host", "evil.example")
	if !strings.Contains(r.Body, "https://127.0.0.1:") {
		t.Errorf("with SWR_KEY_HOST the origin should see the keyed Host, got %q", r.Body)
	}
}

func TestAFieldTheClientHidesWithConnectionCannotKeyAVariant(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		lang := r.Header.Get("Accept-Language")
		if lang == "" {
			lang = "en"
		}
		fmt.Fprint(w, "page in "+lang)
	})
	p := startProxy(t, o.URL, nil)
	get(t, p.URL+"/l", "Accept-Language", "fr", "Connection", "Accept-Language") // the attacker
	if r := get(t, p.URL+"/l", "Accept-Language", "fr"); r.Body != "page in fr" {
		t.Fatalf("a French reader got %q", r.Body)
	}
}
