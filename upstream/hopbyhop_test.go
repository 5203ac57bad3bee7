package upstream

import (
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/httpcache"
)

func TestHopByHopResponseFieldsAreRemoved(t *testing.T) {
	srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Connection", "X-Hop-A, x-hop-b")
		h.Add("Connection", " X-Hop-C ,,")
		h.Set("X-Hop-A", "1")
		h.Set("X-Hop-B", "2")
		h.Set("X-Hop-C", "3")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Connection", "keep-alive")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Te", "trailers")
		h.Set("Upgrade", "h2c")
		h.Add("Set-Cookie", "a=1")
		h.Add("Set-Cookie", "b=2")
		h.Add("Cache-Control", "max-age=60")
		h.Add("Cache-Control", "stale-while-revalidate=30")
		h.Add("Vary", "Accept-Encoding")
		h.Add("Vary", "Accept-Language")
		h.Set("X-End", "kept")
		w.(http.Flusher).Flush() // chunked: Transfer-Encoding too
		io.WriteString(w, "body")
	})
	resp := get(t, newClient(t, srv.URL, 5*time.Second), "/", nil)

	for _, name := range []string{"Connection", "X-Hop-A", "X-Hop-B", "X-Hop-C", "Keep-Alive", "Proxy-Connection",
		"Proxy-Authenticate", "Te", "Upgrade", "Transfer-Encoding", "Trailer"} {
		if vs := resp.Header.Values(name); len(vs) > 0 {
			t.Errorf("hop-by-hop %s = %q reached the caller", name, vs)
		}
	}
	kept := map[string][]string{
		"Set-Cookie":    {"a=1", "b=2"},
		"Cache-Control": {"max-age=60", "stale-while-revalidate=30"},
		"Vary":          {"Accept-Encoding", "Accept-Language"},
		"X-End":         {"kept"},
	}
	for name, want := range kept {
		if got := resp.Header.Values(name); !slices.Equal(got, want) {
			t.Errorf("end-to-end %s = %q, want %q", name, got, want)
		}
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "body" {
		t.Errorf("body = %q, %v; want body", b, err)
	}
}

func TestRemoveHopByHop(t *testing.T) {
	tests := []struct {
		name     string
		in, want http.Header
	}{
		{"nothing to remove",
			http.Header{"Content-Type": {"text/plain"}, "Set-Cookie": {"a=1", "b=2"}},
			http.Header{"Content-Type": {"text/plain"}, "Set-Cookie": {"a=1", "b=2"}}},
		{"standard fields",
			http.Header{"Connection": {"keep-alive"}, "Keep-Alive": {"timeout=5"}, "Proxy-Connection": {"close"},
				"Proxy-Authenticate": {"Basic"}, "Proxy-Authorization": {"Basic x"}, "Te": {"trailers"},
				"Trailer": {"X-T"}, "Transfer-Encoding": {"chunked"}, "Upgrade": {"websocket"}, "Etag": {`"a"`}},
			http.Header{"Etag": {`"a"`}}},
		{"fields Connection names, in every line, any case",
			http.Header{"Connection": {"x-a , X-B", "x-c,,"}, "X-A": {"1"}, "X-B": {"2"}, "X-C": {"3"}, "X-D": {"4"}},
			http.Header{"X-D": {"4"}}},
		{"Connection naming an end-to-end field",
			http.Header{"Connection": {"Cache-Control"}, "Cache-Control": {"no-store"}, "Vary": {"Accept"}},
			http.Header{"Vary": {"Accept"}}},
		{"empty", http.Header{}, http.Header{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.in.Clone()
			RemoveHopByHop(h)
			if len(h) != len(tt.want) {
				t.Errorf("RemoveHopByHop(%v) = %v, want %v", tt.in, h, tt.want)
			}
			for name, want := range tt.want {
				if got := h[name]; !slices.Equal(got, want) {
					t.Errorf("RemoveHopByHop(%v)[%s] = %q, want %q", tt.in, name, got, want)
				}
			}
		})
	}
}

func TestIsHopByHop(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"Connection", true},
		{"Keep-Alive", true},
		{"Transfer-Encoding", true},
		{"transfer-encoding", true},
		{"Te", true},
		{"Upgrade", true},
		{"Proxy-Authorization", true},
		{"Content-Length", false},
		{"Cache-Control", false},
		{"Set-Cookie", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsHopByHop(tt.name); got != tt.want {
			t.Errorf("IsHopByHop(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestListsNameFindsAFieldInAConnectionValueInAnyCase(t *testing.T) {
	tests := []struct {
		connection, name string
		want             bool
	}{
		{"close", "Close", true},
		{"keep-alive, X-Secret", "x-secret", true},
		{" X-A ,\tX-B\t", "X-B", true},
		{"X-Secrets", "X-Secret", false},
		{"", "X-A", false},
		{",,", "X-A", false},
		{"X-A", "", false},
	}
	for _, tt := range tests {
		if got := ListsName(tt.connection, tt.name); got != tt.want {
			t.Errorf("ListsName(%q, %q) = %v, want %v", tt.connection, tt.name, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ListsName("keep-alive, X-Secret", "x-secret") }); n != 0 {
		t.Errorf("ListsName allocates %v times", n)
	}
}

// The connection's fields are spelt twice (upstream imports nothing of the caching parts):
// here and in httpcache.ConnectionFields. The two lists are the same, plus the proxy
// authentication fields here.
func TestTheHopByHopFieldsAreTheConnectionFieldsAndProxyAuthentication(t *testing.T) {
	want := slices.Concat(httpcache.ConnectionFields, []string{"Proxy-Authenticate", "Proxy-Authorization"})
	if !slices.Equal(hopByHop, want) {
		t.Errorf("hopByHop = %q, want httpcache.ConnectionFields and the proxy authentication fields %q", hopByHop, want)
	}
	for _, name := range want {
		if !IsHopByHop(name) {
			t.Errorf("IsHopByHop(%q) = false", name)
		}
	}
}
