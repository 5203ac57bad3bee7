package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestExitCodeFollowsTheStatus(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/_swr/healthz":
			io.WriteString(w, "ok\n")
		case "/slow":
			<-release
		default:
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close: the slow handler returns first
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()

	tests := []struct {
		name string
		args []string
		want int
	}{
		{"200", []string{srv.URL + "/_swr/healthz"}, 0},
		{"503", []string{srv.URL + "/other"}, 1},
		{"nothing listening", []string{dead.URL + "/_swr/healthz"}, 1},
		{"no answer within the timeout", []string{srv.URL + "/slow"}, 1},
		{"bad URL", []string{"http://[::1"}, 1},
		{"two arguments", []string{"a", "b"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			start := time.Now()
			got := run(tt.args, func(string) string { return "" }, &stderr)
			if got != tt.want {
				t.Errorf("exit code %d, want %d (stderr %q)", got, tt.want, stderr.String())
			}
			if d := time.Since(start); d > timeout+time.Second {
				t.Errorf("took %v, want at most about %v", d, timeout)
			}
		})
	}
}

func TestDefaultURLFollowsTheListenSettings(t *testing.T) {
	tests := []struct {
		listen, admin, want string
	}{
		{"", "", "http://127.0.0.1:8000/_swr/healthz"},
		{":8000", "", "http://127.0.0.1:8000/_swr/healthz"},
		{"0.0.0.0:9100", "", "http://127.0.0.1:9100/_swr/healthz"},
		{"10.1.2.3:8000", "", "http://10.1.2.3:8000/_swr/healthz"},
		{"[::]:8000", "", "http://127.0.0.1:8000/_swr/healthz"},
		{":8000", "127.0.0.1:9901", "http://127.0.0.1:9901/_swr/healthz"},
		{":8000", ":9901", "http://127.0.0.1:9901/_swr/healthz"},
	}
	for _, tt := range tests {
		env := map[string]string{"SWR_LISTEN": tt.listen, "SWR_ADMIN_LISTEN": tt.admin}
		if got := defaultURL(func(k string) string { return env[k] }); got != tt.want {
			t.Errorf("SWR_LISTEN=%q SWR_ADMIN_LISTEN=%q: %s, want %s", tt.listen, tt.admin, got, tt.want)
		}
	}
}

func TestDefaultRunProbesSwrproxysHealthEndpoint(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_swr/healthz" {
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	listen := strings.TrimPrefix(srv.URL, "http://")
	env := map[string]string{"SWR_LISTEN": listen}
	if got := run(nil, func(k string) string { return env[k] }, io.Discard); got != 0 {
		t.Errorf("exit code %d, want 0 for a healthy swrproxy on %s", got, listen)
	}
}
