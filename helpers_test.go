package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/config"
	"github.com/swrproxy/swrproxy/internal/wasmtest"
)

// TestMain runs up to 4 parallel tests at once however few CPUs there are (unless -parallel is
// given): these tests spend their time waiting on sockets, child processes and max-age, not
// computing. Tests that bound a latency or measure memory do not call t.Parallel, so they never
// share the machine with another test. It removes the binary buildBinary made.
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given && runtime.GOMAXPROCS(0) < 4 {
		flag.Set("test.parallel", "4")
	}
	wasmCache = wasmtest.Cache // before any test starts an instance
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// origin is a real httptest origin that counts the requests it serves.
type origin struct {
	*httptest.Server
	hits atomic.Int64
}

func newOrigin(t testing.TB, h http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

// instance is one swrproxy started through run, on a 127.0.0.1:0 listener.
type instance struct {
	URL    string
	Admin  string // base URL of the admin listener (= URL without SWR_ADMIN_LISTEN)
	cancel context.CancelFunc
	done   chan error
}

// startProxy runs swrproxy against upstream with the given settings (SWR_* names; SWR_REDIS_URL
// defaults to "" = L1 only, SWR_HEALTH_INTERVAL to 1h) and stops it when the test ends.
func startProxy(t *testing.T, upstream string, env map[string]string) *instance {
	t.Helper()
	return startProxyLogging(t, upstream, env, nil)
}

// startProxyLogging is startProxy with the production logger writing to logs (nil: the test logger).
func startProxyLogging(t *testing.T, upstream string, env map[string]string, logs io.Writer) *instance {
	t.Helper()
	// Health checks are requests too: tests that count the origin's requests would see them at
	// random. Tests of the checks set their own interval.
	vars := map[string]string{"SWR_UPSTREAM": upstream, "SWR_LISTEN": "127.0.0.1:0", "SWR_REDIS_URL": "", "SWR_HEALTH_INTERVAL": "1h"}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.LoadLookup(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan error, 1)}
	addr := make(chan [2]string, 1)
	log := testLogger(t)
	if logs != nil {
		log = newLogger(cfg, logs)
	}
	go func() {
		in.done <- run(ctx, cfg, log, func(p, a string) { addr <- [2]string{p, a} })
	}()
	select {
	case a := <-addr:
		in.URL, in.Admin = "http://"+a[0], "http://"+a[1]
	case err := <-in.done:
		cancel()
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("swrproxy did not start listening within 10s")
	}
	t.Cleanup(in.stop)
	return in
}

func (in *instance) stop() {
	in.cancel()
	select {
	case <-in.done:
	case <-time.After(20 * time.Second):
		panic("swrproxy did not stop within 20s")
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("SWR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// reply is a response with its body read.
type reply struct {
	*http.Response
	Body string
}

var client = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: 512, DisableCompression: true},
	Timeout:   30 * time.Second,
}

// do sends a request with header pairs ("Name", "value", …) and reads the whole reply. It may be
// called from any goroutine: it reports failures as a 0 status instead of failing the test.
func do(method, url string, hdr ...string) reply {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return reply{Response: &http.Response{StatusCode: 0, Header: http.Header{}}, Body: err.Error()}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		return reply{Response: &http.Response{StatusCode: 0, Header: http.Header{}}, Body: err.Error()}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return reply{Response: res, Body: "read error: " + err.Error()}
	}
	return reply{Response: res, Body: string(b)}
}

func get(t testing.TB, url string, hdr ...string) reply {
	t.Helper()
	r := do(http.MethodGet, url, hdr...)
	if r.StatusCode == 0 {
		t.Fatalf("GET %s: %s", url, r.Body)
	}
	return r
}

// expect checks status, X-Cache and (when not empty) body of a reply.
func expect(t *testing.T, r reply, status int, xcache, body string) {
	t.Helper()
	if r.StatusCode != status || r.Header.Get("X-Cache") != xcache || (body != "" && r.Body != body) {
		t.Fatalf("got %d X-Cache=%q Cache-Status=%q body %q; want %d %s %q",
			r.StatusCode, r.Header.Get("X-Cache"), r.Header.Get("Cache-Status"), trim(r.Body), status, xcache, body)
	}
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// rawRequest writes raw bytes to the proxy and returns everything it answers until it closes
// the connection or 3 s pass.
func rawRequest(t *testing.T, base, raw string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(conn)
	return string(b)
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\r\n"); return l }

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

const secret = "3d6f0a6c1e9b4f27a85c02d9e7b1f4a6" // a valid SWR_INVALIDATE_SECRET: 32 random bytes

// postJSON sends an authenticated (unless token is "") POST and decodes a JSON object reply.
func postJSON(t *testing.T, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer res.Body.Close()
	var out map[string]any
	json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func getStats(t *testing.T, in *instance) (int, map[string]any) {
	t.Helper()
	r := get(t, in.URL+"/_swr/stats", "Authorization", "Bearer "+secret)
	var out map[string]any
	json.Unmarshal([]byte(r.Body), &out)
	return r.StatusCode, out
}

// binDir is the directory buildBinary built swrproxy in ("": not built); TestMain removes it.
var binDir string

// buildBinary builds swrproxy once, without -race whatever the tests are built with, for the
// tests that run it as a process (the memory tests measure the production binary's RSS).
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "swrproxy-bin")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "swrproxy")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// The health checks of these tests: fast enough that a test sees a backend fall and rise in a
// fraction of a second.
const (
	healthEvery = 50 * time.Millisecond
	healthFall  = 2
	healthRise  = 2
)

// healthEnv is the settings of fast health checks, plus the pairs in more ("SWR_X", "v", …).
func healthEnv(more ...string) map[string]string {
	env := map[string]string{
		"SWR_HEALTH_INTERVAL": healthEvery.String(),
		"SWR_HEALTH_FALL":     strconv.Itoa(healthFall),
		"SWR_HEALTH_RISE":     strconv.Itoa(healthRise),
		"SWR_HEALTH_TIMEOUT":  "1s",
	}
	for i := 0; i+1 < len(more); i += 2 {
		env[more[i]] = more[i+1]
	}
	return env
}

// isHealthCheck reports whether r is one of swrproxy's health checks rather than traffic.
func isHealthCheck(r *http.Request) bool {
	return r.Header.Get("User-Agent") == "swrproxy-health-check"
}

// logged reports whether log has a line whose message starts with msg and that names backend.
func logged(log *syncBuffer, msg, backend string) bool {
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, `msg="`+msg) && slices.Contains(strings.Fields(line), "backend="+backend) {
			return true
		}
	}
	return false
}
