package admin

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestDeleteRemovesABackendByHostAndPortOrByURL(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	env := urls(pool)[0]
	for _, target := range removals {
		mustAdd(t, pool, "http://127.0.0.1:9000")
		if got := send(t, app, "DELETE", target, secret, ""); got.status != 204 {
			t.Errorf("DELETE %s: %d %s, want 204", target, got.status, got.body)
		}
		if got := urls(pool); !slices.Equal(got, []string{env}) {
			t.Errorf("after DELETE %s the pool is %q", target, got)
		}
		got := send(t, app, "DELETE", target, secret, "")
		if got.status != 404 || !strings.Contains(errorOf(t, got), "no such backend") {
			t.Errorf("DELETE %s again: %d %s, want 404", target, got.status, got.body)
		}
	}
	// Host names are case-insensitive and the port a number: the same backend.
	mustAdd(t, pool, "http://localhost:9001")
	if got := send(t, app, "DELETE", "/_swr/servers/LocalHost/09001", secret, ""); got.status != 204 {
		t.Errorf("DELETE /_swr/servers/LocalHost/09001: %d %s, want 204", got.status, got.body)
	}
	// A backend on the default port is named with it.
	mustAdd(t, pool, "https://origin.example")
	if got := send(t, app, "DELETE", "/_swr/servers/origin.example/443", secret, ""); got.status != 204 {
		t.Errorf("DELETE /_swr/servers/origin.example/443: %d %s, want 204", got.status, got.body)
	}
	if got := urls(pool); !slices.Equal(got, []string{env}) {
		t.Errorf("the pool is %q", got)
	}
}

func TestAnIPv6BackendCanBeNamedBareBracketedOrPercentEncoded(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	for _, target := range []string{
		"/_swr/servers/[::1]/9000", "/_swr/servers/::1/9000", "/_swr/servers/%5B%3A%3A1%5D/9000",
		"/_swr/servers/%3A%3A1/9000", "/_swr/servers/%5B::1%5D/9000",
		"/_swr/servers?url=" + url.QueryEscape("http://[::1]:9000"), "/_swr/servers?url=" + url.QueryEscape("[::1]:9000"),
	} {
		mustAdd(t, pool, "http://[::1]:9000")
		if got := send(t, app, "DELETE", target, secret, ""); got.status != 204 {
			t.Errorf("DELETE %s: %d %s, want 204", target, got.status, got.body)
		}
		if slices.Contains(urls(pool), "http://[::1]:9000") {
			t.Fatalf("DELETE %s left the backend in the pool", target)
		}
	}
}

func TestDeleteRefusesTheLastBackendAnAmbiguousNameAndBadNames(t *testing.T) {
	a, _ := newAdmin(t, secret)
	app, pool := newApp(a), poolOf(a)
	env := urls(pool)[0]
	envURL, _ := url.Parse(env)

	got := send(t, app, "DELETE", "/_swr/servers/"+envURL.Hostname()+"/"+envURL.Port(), secret, "")
	if got.status != 409 || !strings.Contains(errorOf(t, got), "last backend") {
		t.Errorf("DELETE the last backend: %d %s, want 409", got.status, got.body)
	}

	// Two backends at one address, under different paths: the address names neither.
	mustAdd(t, pool, "http://127.0.0.1:9000/a")
	mustAdd(t, pool, "http://127.0.0.1:9000/b")
	got = send(t, app, "DELETE", "/_swr/servers/127.0.0.1/9000", secret, "")
	if got.status != 409 || !strings.Contains(errorOf(t, got), "by its url") {
		t.Errorf("DELETE an ambiguous address: %d %s, want 409", got.status, got.body)
	}
	before := urls(pool)
	for _, tt := range []struct{ target, says string }{
		{"/_swr/servers", "name the backend"},
		{"/_swr/servers?url=", "name the backend"},
		{"/_swr/servers/127.0.0.1/9000?url=http%3A%2F%2F127.0.0.1%3A9000%2Fa", "not both"},
		{"/_swr/servers/127.0.0.1/http", "port"},
		{"/_swr/servers/127.0.0.1/0", "port"},
		{"/_swr/servers/127.0.0.1/65536", "port"},
		{"/_swr/servers/127.0.0.1/+80", "port"},
		{"/_swr/servers/a%2Fb/80", "not a host"},
		{"/_swr/servers/fe80::1%25eth0/80", "not a host"},
		{"/_swr/servers/[[::1]]/80", "not a host"},
		{"/_swr/servers?url=nothing", "neither a backend URL nor host:port"},
	} {
		got := send(t, app, "DELETE", tt.target, secret, "")
		if msg := errorOf(t, got); got.status != 400 || !strings.Contains(msg, tt.says) {
			t.Errorf("DELETE %s: %d %s, want 400 saying %q", tt.target, got.status, got.body, tt.says)
		}
	}
	if got := send(t, app, "DELETE", "/_swr/servers/127.0.0.1/9000/a", secret, ""); got.status != 404 || got.body != "Not Found" {
		t.Errorf("DELETE with three segments: %d %q, want the reserved prefix's 404", got.status, got.body)
	}
	if after := urls(pool); !slices.Equal(after, before) {
		t.Errorf("the pool went from %q to %q", before, after)
	}
	if got := send(t, app, "DELETE", "/_swr/servers?url="+url.QueryEscape("http://127.0.0.1:9000/a"), secret, ""); got.status != 204 {
		t.Errorf("DELETE one of the two by its url: %d %s, want 204", got.status, got.body)
	}
}
