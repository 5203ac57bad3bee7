package admin

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeServer: the parser of POST /_swr/servers bodies never panics; what it accepts is a
// non-empty url that the same body shape gives back; its errors, clipped, stay short.
func FuzzDecodeServer(f *testing.F) {
	for _, tt := range badBodies {
		f.Add([]byte(tt.body))
	}
	f.Add([]byte(`{"url":"http://127.0.0.1:9000"}`))
	f.Add([]byte(`{"URL":"http://[::1]:9000/a"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		u, err := decodeServer(body)
		if err != nil {
			if msg := clip(err.Error()); len(msg) > maxEcho+len("…") {
				t.Errorf("clipped error of %d bytes", len(msg))
			}
			return
		}
		if u == "" {
			t.Fatal("accepted an empty url")
		}
		again, _ := json.Marshal(serverRequest{URL: u})
		if v, err := decodeServer(again); err != nil || v != u {
			t.Errorf("decodeServer(%s) = %q, %v; want %q", again, v, err, u)
		}
	})
}

// FuzzHostPort: the parser of DELETE /_swr/servers/<host>/<port> never panics, and what it
// accepts is a host:port with a port from 1 to 65535 that it accepts again unchanged.
func FuzzHostPort(f *testing.F) {
	for _, seed := range [][2]string{{"127.0.0.1", "9000"}, {"[::1]", "9000"}, {"%5B%3A%3A1%5D", "09000"}, {"::1", "80"},
		{"LocalHost", "1"}, {"a%2Fb", "80"}, {"%zz", "80"}, {"h", "+80"}, {"fe80::1%25eth0", "80"}, {"[[::1]]", "65536"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, host, port string) {
		hp, err := hostPort(host, port)
		if err != nil {
			return
		}
		h, p, err := net.SplitHostPort(hp)
		if err != nil {
			t.Fatalf("hostPort(%q, %q) = %q: %v", host, port, hp, err)
		}
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			t.Errorf("hostPort(%q, %q) = %q: port %q", host, port, hp, p)
		}
		if h == "" || strings.ContainsAny(h, "/?#[]@%") || h != strings.ToLower(h) {
			t.Errorf("hostPort(%q, %q) = %q: host %q", host, port, hp, h)
		}
		if again, err := hostPort(h, p); err != nil || again != hp {
			t.Errorf("hostPort of %q's own parts = %q, %v", hp, again, err)
		}
		if utf8.ValidString(host) && !utf8.ValidString(hp) {
			t.Errorf("hostPort(%q, %q) = %q: invalid UTF-8 from valid", host, port, hp)
		}
	})
}

// FuzzLoginForm: the login never panics on a form body, and a session is issued only for a form
// whose csrf field is the token of the request's nonce cookie and whose secret is the right one.
// The rate limit is lifted for each input, so that every one reaches the password check. The
// oracle reads the form as net/url does: it checks the token and password comparisons and what
// is issued, not the form parser itself.
func FuzzLoginForm(f *testing.F) {
	a, _ := newAdmin(f, secret)
	app := newApp(a)
	const nonce = "fuzz-nonce"
	token := a.sess.loginToken(nonce)
	f.Add([]byte(url.Values{"secret": {secret}, "csrf": {token}}.Encode()))
	f.Add([]byte("secret=" + secret + "&csrf=" + token + "&secret=x"))
	f.Add([]byte("csrf=" + token + "&secret=%zz"))
	f.Add([]byte("secret=" + secret + ";csrf=" + token))
	f.Add([]byte(strings.Repeat("a=b&", 2000)))
	f.Fuzz(func(t *testing.T, body []byte) {
		a.sess.mu.Lock()
		clear(a.sess.clients)
		a.sess.mu.Unlock()
		req := httptest.NewRequest("POST", "/_swr/ui/login", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: loginCookie, Value: nonce})
		res, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		issued := false
		for _, c := range res.Cookies() {
			issued = issued || c.Name == sessionCookie && c.Value != ""
		}
		form, perr := url.ParseQuery(string(body))
		valid := perr == nil && form.Get("csrf") == token && form.Get("secret") == secret
		if issued != valid {
			t.Fatalf("body %q: session issued %v (status %d), want %v", body, issued, res.StatusCode, valid)
		}
	})
}
