package upstream

import (
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAddAndRemoveWithoutRedis(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{}, bs[0].url)
	ctx := t.Context()

	s, err := c.Add(ctx, strings.ToUpper(bs[1].srv.URL[:7])+bs[1].srv.URL[7:]+"/")
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	if s.URL != bs[1].url || s.State != "up" || s.Source != SourceAPI || time.Since(s.Since) > time.Minute {
		t.Errorf("Add = %+v, want %s up since now, source api", s, bs[1].url)
	}
	if got := ids(c); !slices.Equal(got, sorted(bs[0].url, bs[1].url)) {
		t.Errorf("pool = %v after Add", got)
	}
	if server(t, c, bs[0].url).Source != SourceEnv {
		t.Error("the environment's backend lost its source")
	}
	// A backend added is up at once and takes its share.
	for range 4 {
		mustFetch(t, c, "", "/x")
	}
	if bs[1].hits.Load() != 2 {
		t.Errorf("the added backend got %d of 4 requests, want 2", bs[1].hits.Load())
	}

	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"add again", func() error { _, err := c.Add(ctx, bs[1].url+"/"); return err }, ErrExists},
		{"add ftp", func() error { _, err := c.Add(ctx, "ftp://x"); return err }, ErrBadBackend},
		{"add with query", func() error { _, err := c.Add(ctx, "http://x/?a=1"); return err }, ErrBadBackend},
		{"remove absent url", func() error { _, err := c.Remove(ctx, "http://127.0.0.1:1"); return err }, ErrNotFound},
		{"remove absent host:port", func() error { _, err := c.Remove(ctx, "127.0.0.1:1"); return err }, ErrNotFound},
		{"remove nonsense", func() error { _, err := c.Remove(ctx, "no port"); return err }, ErrBadBackend},
	}
	for _, tt := range tests {
		if err := tt.op(); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if got := ids(c); len(got) != 2 {
		t.Errorf("pool = %v after refused changes, want it unchanged", got)
	}

	// By host:port.
	hp := strings.TrimPrefix(bs[0].url, "http://")
	if id, err := c.Remove(ctx, hp); err != nil || id != bs[0].url {
		t.Errorf("Remove(%s) = %q, %v; want %s", hp, id, err, bs[0].url)
	}
	if _, err := c.Remove(ctx, bs[1].url); !errors.Is(err, ErrLastBackend) {
		t.Errorf("Remove of the last backend: %v, want ErrLastBackend", err)
	}
	if got := ids(c); !slices.Equal(got, []string{bs[1].url}) {
		t.Errorf("pool = %v, want only %s", got, bs[1].url)
	}
	for range 3 {
		if got := mustFetch(t, c, "", "/x"); got != bs[1].name {
			t.Errorf("a request went to %s, removed", got)
		}
	}
}

func TestAHostAndPortOfTwoBackendsIsAmbiguous(t *testing.T) {
	b := startBackend(t, "a")
	other := startBackend(t, "o")
	c := newPool(t, Options{}, b.url+"/v1", b.url+"/v2", other.url)
	hp := strings.TrimPrefix(b.url, "http://")
	if _, err := c.Remove(t.Context(), hp); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("Remove(%s) = %v, want ErrAmbiguous", hp, err)
	}
	if id, err := c.Remove(t.Context(), b.url+"/v1/"); err != nil || id != b.url+"/v1" {
		t.Fatalf("Remove by URL = %q, %v", id, err)
	}
	if id, err := c.Remove(t.Context(), hp); err != nil || id != b.url+"/v2" {
		t.Errorf("Remove(%s) with one backend left there = %q, %v; want %s/v2", hp, id, err, b.url)
	}
}

func TestThePoolHoldsAtMostMaxBackends(t *testing.T) {
	c := newPool(t, Options{}, "http://127.0.0.1:1")
	for i := 2; i <= MaxBackends; i++ {
		if _, err := c.Add(t.Context(), "http://127.0.0.1:"+strconv.Itoa(i)); err != nil {
			t.Fatalf("Add #%d: %v", i, err)
		}
	}
	if _, err := c.Add(t.Context(), "http://127.0.0.1:9999"); !errors.Is(err, ErrPoolFull) {
		t.Errorf("Add past %d: %v, want ErrPoolFull", MaxBackends, err)
	}
	if n := len(c.Servers()); n != MaxBackends {
		t.Errorf("%d backends, want %d", n, MaxBackends)
	}
}

func TestRequestsInFlightToARemovedBackendFinish(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{Balance: BalanceKeyHash}, urls(bs...)...)
	k := keyOn(t, c, bs[0].url)
	resp := open(t, c, k, "/hold") // headers in, body held open by the origin
	if _, err := c.Remove(t.Context(), bs[0].url); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if got := mustFetch(t, c, k, "/x"); got != bs[1].name {
		t.Errorf("after Remove the key went to %s", got)
	}
	bs[0].unblock()
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != bs[0].name {
		t.Errorf("body of the request in flight to the removed backend = %q, %v; want %q", body, err, bs[0].name)
	}
	resp.Body.Close()
	if n := c.Stats().Budget.InUse; n != 0 {
		t.Errorf("budget in use = %d, want 0", n)
	}
}

// Host names are case-insensitive (RFC 3986 §3.2.2): DELETE /_swr/servers/Origin/8080 names the
// backend http://origin:8080.
func TestRemoveByHostAndPortIgnoresTheHostsCase(t *testing.T) {
	c := newPool(t, Options{}, "http://origin.example:8080", "https://other.example")
	if id, err := c.Remove(t.Context(), "Origin.EXAMPLE:8080"); err != nil || id != "http://origin.example:8080" {
		t.Errorf("Remove(Origin.EXAMPLE:8080) = %q, %v; want http://origin.example:8080", id, err)
	}
	if _, err := c.Remove(t.Context(), "Other.Example:80"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove(Other.Example:80) = %v, want ErrNotFound (it listens on 443)", err)
	}
}
