package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

func TestMetricsArePrometheusText(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "m")
	})
	p := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": redistest.Start(t).URL()})
	get(t, p.URL+"/a")
	get(t, p.URL+"/a")
	do(http.MethodPost, p.URL+"/a")
	r := get(t, p.URL+"/_swr/metrics")
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`swrproxy_requests_total{cache="hit",tier="l1"} 1`,
		`swrproxy_requests_total{cache="miss",tier="origin"} 1`,
		`swrproxy_requests_total{cache="bypass",tier="origin"} 1`,
		`swrproxy_origin_requests_total 1`,
		`swrproxy_origin_request_duration_seconds_count{kind="fill"} 1`,
		`swrproxy_origin_request_duration_seconds_count{kind="pass"} 1`,
		`swrproxy_collapsed_total{scope="fleet"} 0`,
		`swrproxy_refreshes_total{outcome="overflow"} 0`,
		`swrproxy_invalidation_requests_total 1`,
		`swrproxy_write_invalidations_total 1`, // the POST cleared /a
		`swrproxy_refresh_tracked_keys 1`,
		`swrproxy_refresh_tracked_bytes `,
		`swrproxy_refresh_queue_bytes `,
		`swrproxy_refresh_untracked_total 0`,
		`swrproxy_l1_objects `,
		`swrproxy_l1_bytes `,
		`swrproxy_redis_errors_total 0`,
		`swrproxy_redis_circuit_open 0`,
		`swrproxy_instances 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(r.Body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestAccessLogHasOneJSONLinePerRequest(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "logged")
	})
	var buf syncBuffer
	p := startProxyLogging(t, o.URL, map[string]string{"SWR_ACCESS_LOG": "true", "SWR_LOG_FORMAT": "json",
		"SWR_INVALIDATE_SECRET": secret}, &buf)
	get(t, p.URL+"/log?x=1")
	get(t, p.URL+"/log?x=1")
	var access []map[string]any
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		if line["msg"] == "access" {
			access = append(access, line)
		}
	}
	if len(access) != 2 {
		t.Fatalf("%d access lines, want 2:\n%s", len(access), buf.String())
	}
	l := access[1]
	if l["method"] != "GET" || l["path"] != "/log?x=1" || l["status"] != float64(200) || l["cache"] != "HIT" || l["bytes"] != float64(6) || l["duration"] == "" {
		t.Errorf("access line %v", l)
	}
	if strings.Contains(buf.String(), secret) {
		t.Error("the secret appears in the log")
	}
	if !strings.Contains(buf.String(), `"invalidate_secret":"***"`) {
		t.Errorf("start-up line does not show the masked settings:\n%s", buf.String())
	}
}

// syncBuffer collects a process's or a logger's output; safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// buildBinary builds swrproxy once for the tests that run it as a process.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "swrproxy-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "swrproxy")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestBadSettingsStopStartUpNamingTheSetting(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		env  []string
		args []string
		want []string
	}{
		{nil, nil, []string{"SWR_UPSTREAM is required"}},
		{[]string{"SWR_UPSTREAM=ftp://x", "SWR_DEFAULT_TTL=ten"}, nil, []string{"SWR_UPSTREAM", "ftp://x", "SWR_DEFAULT_TTL", "ten"}},
		{[]string{"SWR_UPSTREAM=http://o"}, []string{"--l1-max-bytes=lots"}, []string{"--l1-max-bytes", "lots"}},
	}
	for _, tt := range tests {
		cmd := exec.Command(bin, tt.args...)
		cmd.Dir = t.TempDir() // no .env there
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tt.env...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("env %v args %v: exit %v, want 2\n%s", tt.env, tt.args, err, out)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("env %v args %v: output lacks %q:\n%s", tt.env, tt.args, w, out)
			}
		}
	}
}

func TestDotEnvIsReadAndTheEnvironmentWins(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".env"), []byte("SWR_UPSTREAM=http://127.0.0.1:1\nSWR_DEFAULT_TTL=soon\nSWR_STALE_IF_ERROR=bad\n"), 0o600)
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SWR_STALE_IF_ERROR=5m"}
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), `SWR_DEFAULT_TTL="soon"`) || strings.Contains(string(out), "SWR_STALE_IF_ERROR") {
		t.Errorf("want the .env value of SWR_DEFAULT_TTL reported and the environment's SWR_STALE_IF_ERROR used:\n%s", out)
	}
}

func TestSIGTERMLetsTheInFlightRequestFinishAndExitsZero(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{}, 1)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		time.Sleep(700 * time.Millisecond)
		fmt.Fprint(w, "completed")
	})
	port := redistest.FreePort(t)
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SWR_UPSTREAM=" + o.URL, "SWR_REDIS_URL=",
		fmt.Sprintf("SWR_LISTEN=127.0.0.1:%d", port)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, "swrproxy to listen", func() bool { return do(http.MethodGet, base+"/_swr/healthz").StatusCode == 200 })

	got := make(chan reply, 1)
	go func() { got <- do(http.MethodGet, base+"/slow") }()
	<-entered
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.StatusCode != 200 || r.Body != "completed" {
		t.Errorf("in-flight request got %d %q", r.StatusCode, trim(r.Body))
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v, want 0\n%s", err, logs.String())
		}
		if os.Getenv("SWR_TEST_LOG") != "" {
			t.Log(logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("swrproxy did not exit within 15s of SIGTERM\n%s", logs.String())
	}
}

func TestAPlaceholderSecretStopsStartUpSayingHowToMakeOne(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"change-me-to-a-long-random-string", "4f1c9e0b7a2d58e6"} { // a placeholder; 16 random bytes
		cmd := exec.Command(bin)
		cmd.Dir = t.TempDir()
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SWR_UPSTREAM=http://127.0.0.1:1", "SWR_INVALIDATE_SECRET=" + v}
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("SWR_INVALIDATE_SECRET=%s: exit %v, want 2\n%s", v, err, out)
		}
		if s := string(out); !strings.Contains(s, "SWR_INVALIDATE_SECRET") || !strings.Contains(s, "openssl rand -hex 32") || strings.Contains(s, v) {
			t.Errorf("SWR_INVALIDATE_SECRET=%s: the message must name the setting and say how to make a secret, without echoing it:\n%s", v, s)
		}
	}
}

func TestTheAdminListenerHasEveryPrivateEndpointAndTheProxyListenerOnlyHealthz(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "origin") })
	p := startProxy(t, o.URL, map[string]string{"SWR_ADMIN_LISTEN": "127.0.0.1:0", "SWR_INVALIDATE_SECRET": secret})
	auth := []string{"Authorization", "Bearer " + secret}
	for _, path := range []string{"/_swr/healthz", "/_swr/readyz", "/_swr/metrics", "/_swr/stats", "/_swr/keys"} {
		if r := get(t, p.Admin+path, auth...); r.StatusCode != 200 {
			t.Errorf("admin listener GET %s: %d, want 200", path, r.StatusCode)
		}
		want := 404
		if path == "/_swr/healthz" {
			want = 200 // liveness on every listener
		}
		if r := get(t, p.URL+path, auth...); r.StatusCode != want {
			t.Errorf("proxy listener GET %s: %d, want %d", path, r.StatusCode, want)
		}
	}
	if r := do("PURGE", p.URL+"/x", auth...); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PURGE on the proxy listener: %d, want 405", r.StatusCode)
	}
	if r := do("PURGE", p.Admin+"/x", auth...); r.StatusCode != 200 {
		t.Errorf("PURGE on the admin listener: %d %s, want 200", r.StatusCode, r.Body)
	}
	if n := o.hits.Load(); n != 0 {
		t.Errorf("the origin got %d requests for /_swr/ paths", n)
	}
}

func TestReadinessNamesNoInternalAddress(t *testing.T) {
	// Redis and the origin are both down: the reply says so in generic words.
	down := redistest.FreePort(t)
	p := startProxy(t, "http://127.0.0.1:"+strconv.Itoa(down), map[string]string{
		"SWR_REDIS_URL": "redis://127.0.0.1:" + strconv.Itoa(down) + "/0"})
	r := get(t, p.URL+"/_swr/readyz")
	if r.StatusCode != 200 || r.Body != `{"origin":"unreachable","redis":"unreachable","status":"ready"}` {
		t.Fatalf("readyz: %d %s, want both unreachable and nothing else", r.StatusCode, r.Body)
	}
}

// TestMakeFuzzRunsEveryFuzzTarget keeps the Makefile's list in step with the code: every parser of
// outside bytes has a fuzz target, and `make fuzz` runs each one.
func TestMakeFuzzRunsEveryFuzzTarget(t *testing.T) {
	mk, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)
	found := 0
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			found++
			if target := "./" + filepath.Dir(path) + ":" + m[1]; !strings.Contains(string(mk), target) {
				t.Errorf("%s has %s, which make fuzz does not run (add %s to FUZZ_TARGETS)", path, m[1], target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 10 {
		t.Errorf("found %d fuzz targets, expected at least 10", found)
	}
}
