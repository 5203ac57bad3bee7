package admin

import (
	"strconv"
	"strings"
	"testing"
)

// The login form is the one body the admin page parses from a client that has no credentials
// yet: whatever bytes it sends, it gets its own answer, the connection stays in step, and no
// session is issued without the form's token and the secret.
func TestTheLoginFormOnARawSocketAnswersEachRequestAndIssuesNoSession(t *testing.T) {
	a, _ := newAdmin(t, secret)
	addr := serve(t, a)
	n := nonce()
	tok := a.sess.loginToken(n)
	form := func(body string, extra string) string {
		return "POST /_swr/ui/login HTTP/1.1\r\nHost: x\r\nCookie: " + loginCookie + "=" + n + "\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
			extra + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	tests := []struct {
		name, raw string
		want      int
	}{
		{"no token", form("secret="+secret, ""), 403},
		{"wrong token", form("secret="+secret+"&csrf=x", ""), 403},
		{"wrong secret", form("secret=nope&csrf="+tok, ""), 401},
		{"broken escapes", form("secret=%zz&csrf="+tok, ""), 400},
		{"body over 4 KiB", form("secret="+strings.Repeat("a", 5000)+"&csrf="+tok, ""), 413},
		{"chunked, the secret split", "POST /_swr/ui/login HTTP/1.1\r\nHost: x\r\nCookie: " + loginCookie + "=" + n +
			"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nsecre\r\n" + strconv.FormatInt(int64(len("t=nope&csrf="+tok)), 16) + "\r\nt=nope&csrf=" + tok + "\r\n0\r\n\r\n", 401},
	}
	for _, tt := range tests {
		res := exchange(t, addr, tt.raw+healthz)
		got := statuses(res)
		if len(got) == 0 || got[0] != tt.want {
			t.Errorf("%s: statuses %v, want %d first", tt.name, got, tt.want)
			continue
		}
		if len(got) == 2 && got[1] != 200 {
			t.Errorf("%s: the request after it got %d, want the health check's 200", tt.name, got[1])
		}
		for _, r := range res.Responses {
			for _, c := range r.Header.Values("Set-Cookie") {
				if strings.HasPrefix(c, sessionCookie+"=") && !strings.Contains(c, "max-age=-1") && !strings.Contains(c, sessionCookie+"=;") {
					t.Errorf("%s: a session was issued: %s", tt.name, c)
				}
			}
		}
	}
	// The right secret and token log in, on a raw socket too.
	res := exchange(t, addr, form("secret="+secret+"&csrf="+tok, ""))
	if got := statuses(res); len(got) != 1 || got[0] != 303 || !strings.Contains(strings.Join(res.Responses[0].Header.Values("Set-Cookie"), " "), sessionCookie+"=") {
		t.Errorf("the right login: %v %v", got, res.Responses)
	}
}
