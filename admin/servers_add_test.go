package admin

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/swrproxy/swrproxy/upstream"
)

func TestABackendAddedThroughTheAPIIsListedAndCanBeRemovedAtItsLocation(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	env := urls(pool)[0]

	got := sendTyped(t, app, "POST", "/_swr/servers", secret, "application/json; charset=utf-8", `{"url":"HTTP://127.0.0.1:9000/"}`)
	var added upstream.Server
	if err := json.Unmarshal([]byte(got.body), &added); got.status != 201 || err != nil {
		t.Fatalf("POST: %d %s", got.status, got.body)
	}
	if added.URL != "http://127.0.0.1:9000" || added.Source != "api" || added.State != "up" {
		t.Errorf("POST answered %+v, want the normalised URL, source api, up", added)
	}
	loc := got.header.Get("Location")
	if loc != "/_swr/servers?url=http%3A%2F%2F127.0.0.1%3A9000" {
		t.Errorf("Location = %q", loc)
	}

	got = send(t, app, "GET", "/_swr/servers", secret, "")
	var list struct {
		Instance string            `json:"instance"`
		Balance  string            `json:"balance"`
		Healthy  *int              `json:"healthy"`
		Servers  []upstream.Server `json:"servers"`
	}
	if err := json.Unmarshal([]byte(got.body), &list); got.status != 200 || err != nil {
		t.Fatalf("GET: %d %s", got.status, got.body)
	}
	if list.Instance != instance || list.Balance != "round_robin" || list.Healthy == nil || *list.Healthy != 2 || len(list.Servers) != 2 {
		t.Fatalf("GET: %s", got.body)
	}
	for _, s := range list.Servers {
		if want := map[string]string{"http://127.0.0.1:9000": "api", env: "env"}[s.URL]; s.Source != want || s.State != "up" {
			t.Errorf("GET lists %+v, want it up with source %q", s, want)
		}
	}
	var fields map[string]any
	json.Unmarshal([]byte(got.body), &fields)
	if keys := slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(keys, []string{"balance", "healthy", "instance", "servers"}) {
		t.Errorf("GET /_swr/servers has members %q", keys)
	}

	for _, body := range []string{`{"url":"http://127.0.0.1:9000"}`, `{"url":"http://127.0.0.1:9000/"}`} {
		got = sendTyped(t, app, "POST", "/_swr/servers", secret, "application/json", body)
		if got.status != 409 || !strings.Contains(errorOf(t, got), "already in the pool") {
			t.Errorf("POST %s again: %d %s, want 409", body, got.status, got.body)
		}
	}

	if got := send(t, app, "DELETE", loc, secret, ""); got.status != 204 || got.body != "" {
		t.Errorf("DELETE %s: %d %q, want 204", loc, got.status, got.body)
	}
	if after := urls(pool); !slices.Equal(after, []string{env}) {
		t.Errorf("after DELETE the pool is %q", after)
	}
}

func TestThePoolFullIsA409(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	for i := len(urls(pool)); i < upstream.MaxBackends; i++ {
		mustAdd(t, pool, "http://127.0.0.1:"+strconv.Itoa(10000+i))
	}
	got := sendTyped(t, app, "POST", "/_swr/servers", secret, "application/json", `{"url":"http://127.0.0.1:9000"}`)
	if got.status != 409 || !strings.Contains(errorOf(t, got), "at most") {
		t.Errorf("POST to a full pool: %d %s, want 409", got.status, got.body)
	}
	if n := len(urls(pool)); n != upstream.MaxBackends {
		t.Errorf("the pool holds %d backends", n)
	}
}

var badBodies = []struct {
	name, ctype, body string
	status            int
	says              string
}{
	{"not JSON", "application/json", `url=http://127.0.0.1:9000`, 400, "invalid JSON"},
	{"url a number", "application/json", `{"url":1}`, 400, "invalid JSON"},
	{"an array", "", `[]`, 400, "invalid JSON"},
	{"no url", "application/json", `{}`, 400, "missing url"},
	{"url null", "application/json", `{"url":null}`, 400, "missing url"},
	{"null", "application/json", `null`, 400, "missing url"},
	{"empty body", "application/json", ``, 400, "empty body"},
	{"ftp", "application/json", `{"url":"ftp://x"}`, 400, "scheme must be http or https"},
	{"credentials", "application/json", `{"url":"http://u:p@127.0.0.1:9000"}`, 400, "credentials"},
	{"a port out of range", "application/json", `{"url":"http://127.0.0.1:70000"}`, 400, "port"},
	{"a query", "application/json", `{"url":"http://127.0.0.1:9000/?a=1"}`, 400, "query"},
	{"a second value", "application/json", `{"url":"http://127.0.0.1:9000"}{}`, 400, "more than one value"},
	{"trailing garbage", "application/json", `{"url":"http://127.0.0.1:9000"} x`, 400, "more than one value"},
	{"an unknown field", "application/json", `{"url":"http://127.0.0.1:9000","weight":2}`, 400, "unknown field"},
	{"a body over 4 KiB", "application/json", `{"url":"http://127.0.0.1:9000/` + strings.Repeat("a", 5<<10) + `"}`, 413, "4 KiB"},
	{"text/plain", "text/plain", `{"url":"http://127.0.0.1:9000"}`, 415, "application/json"},
	{"a real form", "application/x-www-form-urlencoded", `url=http%3A%2F%2F127.0.0.1%3A9000`, 400, "invalid JSON"},
	{"a bad Content-Type", "application/", `{"url":"http://127.0.0.1:9000"}`, 415, "application/json"},
}

func TestBadBodiesOfPostServersAreRefusedWithAJSONErrorAndChangeNothing(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	before := urls(pool)
	for _, tt := range badBodies {
		got := sendTyped(t, app, "POST", "/_swr/servers", secret, tt.ctype, tt.body)
		if msg := errorOf(t, got); got.status != tt.status || !strings.Contains(msg, tt.says) {
			t.Errorf("%s: %d %s, want %d saying %q", tt.name, got.status, got.body, tt.status, tt.says)
		}
	}
	if after := urls(pool); !slices.Equal(after, before) {
		t.Errorf("the pool went from %q to %q", before, after)
	}
}

func TestAnErrorRepeatsAtMostAFewHundredBytesOfTheInput(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app := newApp(a)
	long := strings.Repeat("é", 1500) // 3000 bytes; clipping must not split one
	for _, tt := range []struct{ method, target, body string }{
		{"POST", "/_swr/servers", `{"` + long + `":1}`},
		{"DELETE", "/_swr/servers?url=" + url.QueryEscape(long), ""},
		{"DELETE", "/_swr/servers/" + url.PathEscape(long+"/") + "/1", ""},
		{"DELETE", "/_swr/servers/h/" + url.PathEscape(long), ""},
	} {
		got := sendTyped(t, app, tt.method, tt.target, secret, "application/json", tt.body)
		if msg := errorOf(t, got); got.status != 400 || len(msg) > 210 || !strings.HasSuffix(msg, "é…") {
			t.Errorf("%s %.40s…: %d, error of %d bytes %.80q…", tt.method, tt.target, got.status, len(msg), msg)
		}
	}
}

// curl -d labels its JSON body a form: it is accepted, as POST /_swr/invalidate accepts it.
func TestPostServersAcceptsCurlsDefaultContentType(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	got := sendTyped(t, app, "POST", "/_swr/servers", secret, "application/x-www-form-urlencoded", `{"url":"http://127.0.0.1:9000"}`)
	if got.status != 201 || !slices.Contains(urls(pool), "http://127.0.0.1:9000") {
		t.Errorf("POST as curl -d sends it: %d %s, want 201 and the backend added", got.status, got.body)
	}
}
