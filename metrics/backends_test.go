package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/upstream"
)

// newOrigin is a real origin that answers every request, health checks included, with status.
func newOrigin(t *testing.T, status int) *url.URL {
	t.Helper()
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	t.Cleanup(o.Close)
	u, _ := url.Parse(o.URL)
	return u
}

// get sends one GET through pool and reads the response.
func get(t *testing.T, pool *upstream.Client) {
	t.Helper()
	res, err := pool.Do(context.Background(), &upstream.Request{Method: "GET", URI: "/", Header: http.Header{}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
}

func TestEachBackendHasItsSeriesLabelledByItsURLUntilItIsRemoved(t *testing.T) {
	good, bad := newOrigin(t, 200), newOrigin(t, 500)
	pool, err := upstream.New(upstream.Options{
		Backends: []*url.URL{good, bad}, Timeout: 5 * time.Second,
		Health: upstream.HealthOptions{Interval: 20 * time.Millisecond, Fall: 1, Rise: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 { // round robin: two each; a 5xx is a response, not retried
		get(t, pool)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { pool.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.WaitFor(t, 5*time.Second, "both backends checked, the failing one down", func() bool {
		ss := pool.Servers()
		return len(ss) == 2 && ss[0].LastCheck != nil && ss[1].LastCheck != nil && pool.Healthy() == 1
	})

	src := sources(Snapshot{})
	src.Upstream, src.Servers = pool.Stats, pool.Servers
	m := New(NewOrigin(), src)
	text, stats := scrape(t, m)
	for _, want := range []string{
		fmt.Sprintf(`swrproxy_backend_requests_total{backend=%q,result="success"} 2`, good),
		fmt.Sprintf(`swrproxy_backend_requests_total{backend=%q,result="failed"} 0`, good),
		fmt.Sprintf(`swrproxy_backend_requests_total{backend=%q,result="success"} 0`, bad),
		fmt.Sprintf(`swrproxy_backend_requests_total{backend=%q,result="failed"} 2`, bad),
		fmt.Sprintf(`swrproxy_backend_up{backend=%q} 1`, good),
		fmt.Sprintf(`swrproxy_backend_up{backend=%q} 0`, bad),
		fmt.Sprintf(`swrproxy_backend_in_flight{backend=%q} 0`, good),
		fmt.Sprintf(`swrproxy_backend_consecutive_failures{backend=%q} 0`, good),
		`swrproxy_upstream_requests_total{result="success"} 2`,
		`swrproxy_upstream_requests_total{result="failed"} 2`,
		`swrproxy_upstream_backends 2`,
		`swrproxy_upstream_backends_up 1`,
	} {
		if !strings.Contains(text, "\n"+want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^swrproxy_backend_consecutive_failures\{backend="`+regexp.QuoteMeta(bad.String())+`"\} [1-9]`).FindAllString(text, -1)); n != 1 {
		t.Errorf("the failing backend has no count of failures in a row:\n%s", text)
	}
	check := regexp.MustCompile(`(?m)^swrproxy_backend_health_check_duration_seconds\{backend="(.*)"\} (\S+)$`)
	if got := check.FindAllStringSubmatch(text, -1); len(got) != 2 || got[0][2] == "0" {
		t.Errorf("health check durations: %q, want one positive value per backend", got)
	}
	server, _ := stats["server"].(map[string]any)
	if server["success"] != float64(2) || server["failed"] != float64(2) || stats["upstream_backends_up"] != float64(1) {
		t.Errorf("stats: server %v, upstream_backends_up %v", server, stats["upstream_backends_up"])
	}

	if _, err := pool.Remove(context.Background(), bad.String()); err != nil {
		t.Fatal(err)
	}
	text, _ = scrape(t, m)
	if strings.Contains(text, bad.String()) {
		t.Errorf("the removed backend still has series:\n%s", text)
	}
	if !strings.Contains(text, fmt.Sprintf(`swrproxy_backend_up{backend=%q} 1`, good)) ||
		!strings.Contains(text, `swrproxy_upstream_requests_total{result="failed"} 2`) {
		t.Errorf("after the removal, the other backend's series or the pool's history are gone:\n%s", text)
	}
}
