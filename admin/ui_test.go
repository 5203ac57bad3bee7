package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/invalidate"
	"github.com/swrproxy/swrproxy/metrics"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// browser sends requests to app with the cookies it was given, as a browser would.
type browser struct {
	t       *testing.T
	app     *fiber.App
	cookies map[string]string
}

func newBrowser(t *testing.T, app *fiber.App) *browser {
	return &browser{t: t, app: app, cookies: map[string]string{}}
}

// do sends method target with body (a form when it has "=" and no "{") and header pairs.
func (b *browser) do(method, target, body string, hdr ...string) reply {
	b.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if body != "" && !strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	for n, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: n, Value: v})
	}
	res, err := b.app.Test(req, -1)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	body2, _ := io.ReadAll(res.Body)
	return reply{res.StatusCode, res.Header, string(body2)}
}

var tokenIn = regexp.MustCompile(`name="csrf" value="([^"]+)"|name="csrf-token" content="([^"]+)"`)

// token returns the CSRF token in a page.
func token(t *testing.T, page string) string {
	t.Helper()
	m := tokenIn.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in %q", page)
	}
	return m[1] + m[2]
}

// logIn logs b in with password and returns the dashboard page.
func (b *browser) logIn(password string) reply {
	b.t.Helper()
	form := b.do("GET", "/_swr/ui/login", "")
	r := b.do("POST", "/_swr/ui/login", url.Values{"secret": {password}, "csrf": {token(b.t, form.body)}}.Encode())
	if r.status != fiber.StatusSeeOther || r.header.Get("Location") != "/_swr/ui/" {
		b.t.Fatalf("login: %d %q %v", r.status, r.body, r.header)
	}
	return b.do("GET", "/_swr/ui/", "")
}

func TestThePageNeedsALoginWithTheSecret(t *testing.T) {
	a, _ := newAdmin(t, secret)
	b := newBrowser(t, newApp(a))
	if r := b.do("GET", "/_swr/ui/", ""); r.status != fiber.StatusSeeOther || r.header.Get("Location") != "/_swr/ui/login" {
		t.Fatalf("the page without a session: %d %v, want a redirect to the login", r.status, r.header)
	}
	form := b.do("GET", "/_swr/ui/login", "")
	if form.status != 200 || !strings.Contains(form.body, `name="secret"`) || !strings.Contains(form.header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("login form: %d %v %q", form.status, form.header, form.body)
	}
	csrf := token(t, form.body)
	// No token, or a token for another nonce: 403, whatever the secret.
	if r := b.do("POST", "/_swr/ui/login", url.Values{"secret": {secret}}.Encode()); r.status != 403 {
		t.Errorf("login without the form's token: %d, want 403", r.status)
	}
	other := newBrowser(t, b.app)
	other.do("GET", "/_swr/ui/login", "")
	if r := other.do("POST", "/_swr/ui/login", url.Values{"secret": {secret}, "csrf": {csrf}}.Encode()); r.status != 403 {
		t.Errorf("login with another browser's token: %d, want 403", r.status)
	}
	// A wrong secret: the form again, with a message; no session.
	r := b.do("POST", "/_swr/ui/login", url.Values{"secret": {"nope"}, "csrf": {csrf}}.Encode())
	if r.status != 401 || !strings.Contains(r.body, `id="login-error"`) || b.cookies[sessionCookie] != "" {
		t.Errorf("wrong secret: %d %q, cookies %v", r.status, r.body, b.cookies)
	}
	page := b.logIn(secret)
	if page.status != 200 || !strings.Contains(page.body, `name="csrf-token"`) || page.header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("the page after login: %d %v %q", page.status, page.header, page.body)
	}
}

func TestTheSessionCookieIsHttpOnlyStrictAndScoped(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app := newApp(a)
	b := newBrowser(t, app)
	form := b.do("GET", "/_swr/ui/login", "")
	req := httptest.NewRequest("POST", "/_swr/ui/login", strings.NewReader(url.Values{"secret": {secret}, "csrf": {token(t, form.body)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: loginCookie, Value: b.cookies[loginCookie]})
	res, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	var set string
	for _, v := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, sessionCookie+"=") {
			set = v
		}
	}
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/_swr/", "max-age=43200"} {
		if !strings.Contains(strings.ToLower(set), strings.ToLower(want)) {
			t.Errorf("session cookie %q lacks %s", set, want)
		}
	}
}

func TestStateChangesWithTheSessionNeedItsCSRFToken(t *testing.T) {
	a, store := newAdmin(t, secret)
	b := newBrowser(t, newApp(a))
	csrf := token(t, b.logIn(secret).body)
	if r := b.do("GET", "/_swr/keys", ""); r.status != 200 || !strings.Contains(r.body, `"/a"`) {
		t.Errorf("GET /_swr/keys with the session: %d %q", r.status, r.body)
	}
	if r := b.do("GET", "/_swr/ui/api/dashboard", ""); r.status != 200 || !strings.Contains(r.body, `"series"`) {
		t.Errorf("dashboard: %d %q", r.status, r.body)
	}
	body := `{"keys":["/a"],"mode":"clear"}`
	for _, tok := range []string{"", "nope", csrf + "x"} {
		if r := b.do("POST", "/_swr/invalidate", body, "Content-Type", "application/json", "X-CSRF-Token", tok); r.status != 403 {
			t.Errorf("POST /_swr/invalidate with token %q: %d %q, want 403", tok, r.status, r.body)
		}
	}
	if store.Peek("/a") == nil {
		t.Fatal("a POST without the CSRF token cleared /a")
	}
	if r := b.do("POST", "/_swr/invalidate", body, "Content-Type", "application/json", "X-CSRF-Token", csrf); r.status != 200 || !strings.Contains(r.body, `"cleared":1`) {
		t.Errorf("POST /_swr/invalidate with the token: %d %q", r.status, r.body)
	}
	// Logout needs the token too, and ends the session on this instance.
	if r := b.do("POST", "/_swr/ui/logout", ""); r.status != 403 {
		t.Errorf("logout without the token: %d, want 403", r.status)
	}
	stolen := b.cookies[sessionCookie]
	if r := b.do("POST", "/_swr/ui/logout", url.Values{"csrf": {csrf}}.Encode()); r.status != fiber.StatusSeeOther {
		t.Errorf("logout: %d", r.status)
	}
	b.cookies[sessionCookie] = stolen // a copy of the cookie kept after logout
	if r := b.do("GET", "/_swr/keys", ""); r.status != 401 {
		t.Errorf("a logged-out session: %d, want 401", r.status)
	}
}

func TestForgedOrExpiredSessionsAreRefused(t *testing.T) {
	a, _ := newAdmin(t, secret)
	b := newBrowser(t, newApp(a))
	other := newSessions("another secret of enough length for a key", secret)
	for name, v := range map[string]string{
		"expired":        a.sess.issue(time.Now().Add(-sessionTTL - time.Second)),
		"another key":    other.issue(time.Now()),
		"tampered":       strings.Replace(a.sess.issue(time.Now()), "A", "B", 1) + "x",
		"no signature":   strings.SplitN(a.sess.issue(time.Now()), ".", 2)[0],
		"garbage":        "...",
		"very long junk": strings.Repeat("a", 4000),
	} {
		b.cookies[sessionCookie] = v
		if r := b.do("GET", "/_swr/keys", ""); r.status != 401 {
			t.Errorf("%s session: %d, want 401", name, r.status)
		}
	}
}

func TestWrongLoginsAreLimitedPerClient(t *testing.T) {
	a, _ := newAdmin(t, secret)
	b := newBrowser(t, newApp(a))
	var last reply
	for range loginFailures + 1 {
		form := b.do("GET", "/_swr/ui/login", "")
		last = b.do("POST", "/_swr/ui/login", url.Values{"secret": {"guess"}, "csrf": {token(t, form.body)}}.Encode())
	}
	if last.status != fiber.StatusTooManyRequests || !strings.Contains(last.body, "Too many") {
		t.Errorf("attempt %d: %d %q, want 429 with a message", loginFailures+1, last.status, last.body)
	}
	// Even the right secret waits for the window to pass.
	form := b.do("GET", "/_swr/ui/login", "")
	if r := b.do("POST", "/_swr/ui/login", url.Values{"secret": {secret}, "csrf": {token(t, form.body)}}.Encode()); r.status != fiber.StatusTooManyRequests {
		t.Errorf("the right secret while limited: %d, want 429", r.status)
	}
}

func TestTheAdminPasswordReplacesTheSecretForTheLogin(t *testing.T) {
	a, _ := newAdmin(t, secret)
	a = New(Config{Secret: secret, Password: "page password", Invalidator: a.cfg.Invalidator, Store: a.cfg.Store,
		Hits: a.cfg.Hits, Pool: a.cfg.Pool, Metrics: a.cfg.Metrics, Log: quiet})
	b := newBrowser(t, newApp(a))
	form := b.do("GET", "/_swr/ui/login", "")
	if r := b.do("POST", "/_swr/ui/login", url.Values{"secret": {secret}, "csrf": {token(t, form.body)}}.Encode()); r.status != 401 {
		t.Errorf("the invalidation secret with SWR_ADMIN_PASSWORD set: %d, want 401", r.status)
	}
	b.logIn("page password")
}

func TestTheDashboardKeepsFifteenMinutesOfSamples(t *testing.T) {
	a, _ := newAdmin(t, secret)
	start := time.Now()
	for i := range seriesLen + 20 {
		a.dash.sample(start.Add(time.Duration(i) * sampleEvery))
	}
	s := a.dash.series()
	if len(s) != seriesLen || s[0].T != start.Add(20*sampleEvery).Unix() || s[len(s)-1].T != start.Add(time.Duration(seriesLen+19)*sampleEvery).Unix() {
		t.Errorf("series of %d points from %d to %d", len(s), s[0].T, s[len(s)-1].T)
	}
}

func TestKeyDetailShowsEveryVariant(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app := newApp(a)
	r := send(t, app, "GET", "/_swr/key?key=/a", secret, "")
	if r.status != 200 || !strings.Contains(r.body, `"variants":[{"status":200`) || !strings.Contains(r.body, `"hits":3`) {
		t.Errorf("GET /_swr/key?key=/a: %d %q", r.status, r.body)
	}
	if r := send(t, app, "GET", "/_swr/key?key=/missing", secret, ""); r.status != 404 {
		t.Errorf("a missing key: %d, want 404", r.status)
	}
	if r := send(t, app, "GET", "/_swr/key", secret, ""); r.status != 400 {
		t.Errorf("no key: %d, want 400", r.status)
	}
}

func TestTheFleetListsEveryLiveInstanceThroughRedis(t *testing.T) {
	srv := redistest.Start(t)
	origin := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(origin.Close)
	u, _ := url.Parse(origin.URL)
	dash := func(instance string) *dashboard {
		pool, err := upstream.New(upstream.Options{Backends: []*url.URL{u}, Timeout: time.Second, Instance: instance})
		if err != nil {
			t.Fatal(err)
		}
		return newDashboard(Config{Redis: srv.Client(), Pool: pool, Log: quiet})
	}
	a, b, gone := dash("web-a"), dash("web-b"), dash("web-gone")
	now := time.Now()
	a.publish(context.Background(), now)
	b.publish(context.Background(), now)
	gone.publish(context.Background(), now.Add(-time.Minute))
	var names []string
	for _, e := range a.fleet(context.Background(), now) {
		names = append(names, e.Instance)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"web-a", "web-b"}) {
		t.Errorf("fleet %q, want the two live instances", names)
	}
	if n := srv.Client().HLen(context.Background(), fleetKey).Val(); n != 2 {
		t.Errorf("the fleet hash holds %d entries, want the gone instance dropped", n)
	}
}

func FuzzSessionCookie(f *testing.F) {
	s := newSessions(secret, secret)
	now := time.Unix(1_800_000_000, 0)
	f.Add(s.issue(now))
	f.Add("a.b")
	f.Add(strings.Repeat(".", 100))
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := s.valid(v, now)
		if ok && v != id+"."+s.sign("session", id) {
			t.Fatalf("valid(%q) accepted a cookie this key did not sign", v)
		}
	})
}

func TestTheDashboardsRateAndHitRatioLeavePassThroughsOut(t *testing.T) {
	a, _ := newAdmin(t, secret)
	var h proxy.HandlerStats
	a.dash.cfg.Metrics = metrics.New(metrics.NewOrigin(), metrics.Sources{
		Handler: func() proxy.HandlerStats { return h }, Filler: func() refresh.FillerStats { return refresh.FillerStats{} },
		Pool: func() refresh.PoolStats { return refresh.PoolStats{} }, Tracker: func() refresh.TrackerStats { return refresh.TrackerStats{} },
		Store: a.cfg.Store.(*tiers.Store).Stats, Invalidate: func() invalidate.Stats { return invalidate.Stats{} },
		Upstream: func() upstream.Stats { return upstream.Stats{} }, Servers: func() []upstream.Server { return nil },
	})
	start := time.Now()
	a.dash.sample(start)
	// 10 s: 60 answers: 30 L1 hits, 10 stale, 10 misses, 10 passed through.
	h = proxy.HandlerStats{HitL1: 30, Stale: 10, Miss: 10, Bypass: 10, ClientSuccess: 60}
	p := a.dash.sample(start.Add(10 * time.Second))
	if p.RPS != 6 || p.HitRatio != 0.8 {
		t.Errorf("point %+v, want 6 req/s and a hit ratio of 0.8 (40 of 50 cacheable lookups)", p)
	}
	if p := a.dash.sample(start.Add(20 * time.Second)); p.RPS != 0 || p.HitRatio != 0 {
		t.Errorf("an idle interval: %+v", p)
	}
}

func TestTheDashboardsCountersAreTheStatsOnesUnderTheirNames(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app := fiber.New()
	app.Get("/dashboard", a.dashboardJSON)
	res, err := app.Test(httptest.NewRequest("GET", "/dashboard", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var dash struct{ Counters map[string]any }
	if err := json.NewDecoder(res.Body).Decode(&dash); err != nil {
		t.Fatal(err)
	}
	stats := send(t, newApp(a), "GET", "/_swr/stats", secret, "")
	var want map[string]any
	if err := json.Unmarshal([]byte(stats.body), &want); err != nil {
		t.Fatal(err)
	}
	if len(dash.Counters) != len(dashboardCounters) || dash.Counters["hits_l1"] != float64(7) {
		t.Errorf("dashboard counters %v, want the %d of %q", dash.Counters, len(dashboardCounters), dashboardCounters)
	}
	for name, v := range dash.Counters {
		if want[name] != v {
			t.Errorf("dashboard %s = %v, /_swr/stats %v", name, v, want[name])
		}
	}
}

func TestTheLoginTokensAreNoOracleOfThePasswordAlone(t *testing.T) {
	a := newSessions(secret, "a typed password")
	b := newSessions(secret+"x", "a typed password")
	if a.loginToken("n") == b.loginToken("n") || a.csrf("id") == b.csrf("id") {
		t.Error("tokens depend on the password alone: anyone with one could test password guesses offline")
	}
}

func TestManyAddressesCannotLockTheRightPasswordOut(t *testing.T) {
	s := newSessions(secret, secret)
	now := time.Now()
	for i := range loginClientsMax + 50 {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		s.failed(addr, now)
	}
	if len(s.clients) > loginClientsMax {
		t.Errorf("the table holds %d addresses, more than %d", len(s.clients), loginClientsMax)
	}
	if !s.allow(netip.MustParseAddr("192.0.2.1"), now) {
		t.Error("a new address was refused once the table was full")
	}
	// An IPv6 client counts by its /64: other addresses in it share its count.
	v6 := netip.MustParseAddr("2001:db8::1")
	for range loginFailures {
		s.failed(v6, now)
	}
	if s.allow(netip.MustParseAddr("2001:db8::ffff"), now) {
		t.Error("another address of the same /64 got fresh attempts")
	}
}
