package main

// The repository's own nginx template in front of a real swrproxy (a real nginx on loopback): what
// clients get through it (gzip, weak ETags, 304s, errors, hidden private endpoints) and what it refuses.

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/rawhttp"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

const nginxTemplate = "nginx/templates/default.conf.template"

// nginxBinary returns the path of nginx, failing the test (never skipping it) when it is missing.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Fatal("nginx not found: run `make test` (it installs it) or apt-get install nginx")
	return ""
}

// nginxTemplateVars matches the ${NAME} placeholders the official image's envsubst replaces.
var nginxTemplateVars = regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)\}`)

// renderNginxTemplate does what the nginx image's entrypoint does with the template: replace the
// placeholders with vars. A placeholder without a value fails the test, since the image would
// leave it in place and nginx would not start.
func renderNginxTemplate(t *testing.T, vars map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(nginxTemplate)
	if err != nil {
		t.Fatalf("read the nginx template: %v", err)
	}
	var missing []string
	out := nginxTemplateVars.ReplaceAllStringFunc(string(b), func(m string) string {
		name := nginxTemplateVars.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		t.Fatalf("%s uses ${%s}, which the test (and docker-compose.yml) must define", nginxTemplate, strings.Join(missing, "}, ${"))
	}
	return out
}

// startNginx runs a real nginx with the repository's template, proxying to upstream (host:port),
// on a free loopback port; it returns nginx's base URL and stops nginx when the test ends.
func startNginx(t *testing.T, upstream string) string {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)

	server := renderNginxTemplate(t, map[string]string{"SWRPROXY_UPSTREAM": upstream, "NGINX_PORT": addr})
	if err := os.WriteFile(filepath.Join(dir, "default.conf"), []byte(server), 0o600); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // temp dirs are 0700 root: workers must be able to read them
	}
	// What the image's /etc/nginx/nginx.conf provides around conf.d/*.conf, minus what needs
	// files outside dir (mime.types, /var/log, /var/cache).
	main := fmt.Sprintf(`%[2]s
daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    default_type application/octet-stream;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/default.conf;
}
`, dir, user)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-e", filepath.Join(dir, "error.log"), "-p", dir + "/", "-c", conf}

	if out, err := exec.Command(bin, append([]string{"-t", "-q"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t rejects the rendered template: %v\n%s\n--- rendered server config ---\n%s", err, out, server)
	}

	var output bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill() // by pid; master_process off, so there are no workers to orphan
		<-exited
	})
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return string(b)
	}
	listening := false
	defer func() {
		if !listening { // nginx exited or WaitFor timed out: nginx's own words say why
			t.Logf("nginx error log:\n%s", errorLog())
		}
	}()
	testenv.WaitFor(t, 10*time.Second, "nginx to listen on "+addr, func() bool {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			// The deferred log adds nginx's error log.
			t.Fatalf("nginx exited at start: %v\n%s", err, &output)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	listening = true
	return "http://" + addr
}

func gunzipBody(t *testing.T, r reply) string {
	t.Helper()
	zr, err := gzip.NewReader(strings.NewReader(r.Body))
	if err != nil {
		t.Fatalf("gunzip the body: %v (Content-Encoding %q, %d bytes)", err, r.Header.Get("Content-Encoding"), len(r.Body))
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip the body: %v", err)
	}
	return string(b)
}

func TestNginxGzipsCachedAnswersKeepsTheirValidatorsAndHidesThePrivateEndpoints(t *testing.T) {
	t.Parallel()
	var prices []string
	for i := range 20 {
		prices = append(prices, fmt.Sprintf(`{"pair":"PAIR%02d-USD","price":%d.25}`, i, 100+i))
	}
	body := `{"prices":[` + strings.Join(prices, ",") + `]}` // well over gzip_min_length
	var mu sync.Mutex
	var seen []http.Header // request headers the origin got
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		if r.URL.Path == "/down" {
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "origin is down for maintenance\n")
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	})
	// nginx's own gzip, of a body swrproxy stored as it came (compression_nginx_test.go has
	// swrproxy's codings through nginx).
	p := startProxy(t, o.URL, map[string]string{"SWR_COMPRESS": "off"})
	n := startNginx(t, strings.TrimPrefix(p.URL, "http://"))
	const path = "/api/prices?pair=ALGO-USD"

	// A client that takes gzip gets gzip, from nginx, of swrproxy's cached JSON.
	r := get(t, n+path, "Accept-Encoding", "gzip", "X-Forwarded-For", "203.0.113.7")
	expect(t, r, 200, "MISS", "")
	if ce := r.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("Content-Encoding = %q, want gzip", ce)
	}
	if got := gunzipBody(t, r); got != body {
		t.Fatalf("gunzipped body = %q, want the origin's JSON", trim(got))
	}
	if v := r.Header.Values("Vary"); !slices.ContainsFunc(v, func(s string) bool { return strings.Contains(s, "Accept-Encoding") }) {
		t.Errorf("Vary = %q, want Accept-Encoding (swrproxy's, for a compressible body)", v)
	}
	if s := r.Header.Get("Server"); s != "nginx" {
		t.Errorf("Server = %q, want nginx without a version (server_tokens off)", s)
	}
	etag := r.Header.Get("ETag")
	if !strings.HasPrefix(etag, `W/"`) || !strings.HasSuffix(etag, `"`) {
		t.Fatalf("ETag through gzip = %q, want nginx's weakened W/\"…\"", etag)
	}

	r = get(t, n+path, "Accept-Encoding", "gzip")
	expect(t, r, 200, "HIT", "")
	if got := gunzipBody(t, r); got != body {
		t.Fatalf("gunzipped HIT body = %q, want the origin's JSON", trim(got))
	}
	if got := r.Header.Get("ETag"); got != etag {
		t.Errorf("HIT ETag = %q, want %q again", got, etag)
	}
	if r.Header.Get("Age") == "" {
		t.Error("no Age header through nginx")
	}

	// A poller that sends back the weak tag nginx gave it gets 304 from swrproxy, through nginx.
	r = get(t, n+path, "Accept-Encoding", "gzip", "If-None-Match", etag)
	expect(t, r, http.StatusNotModified, "HIT", "")
	if r.Body != "" {
		t.Errorf("304 through nginx has a body of %d bytes", len(r.Body))
	}
	// And swrproxy itself compares weakly (nginx does not turn 200s into 304s for proxied responses).
	expect(t, get(t, p.URL+path, "If-None-Match", etag), http.StatusNotModified, "HIT", "")
	// A tag that does not match gets the full answer from cache.
	r = get(t, n+path, "Accept-Encoding", "gzip", "If-None-Match", `W/"nope"`)
	expect(t, r, 200, "HIT", "")

	// A client without gzip gets the JSON as it is, with swrproxy's strong ETag.
	r = get(t, n+path)
	expect(t, r, 200, "HIT", body)
	if ce := r.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("Content-Encoding = %q for a client without Accept-Encoding", ce)
	}
	if strong := r.Header.Get("ETag"); "W/"+strong != etag {
		t.Errorf("identity ETag = %q, want the strong form of %q", strong, etag)
	}

	// Errors pass through as swrproxy sent them, not replaced by nginx error pages.
	r = get(t, n+"/down")
	expect(t, r, http.StatusServiceUnavailable, "BYPASS", "origin is down for maintenance\n")

	// The private endpoints are not reachable through nginx, in any spelling.
	for _, path := range []string{"/_swr/healthz", "/_swr/readyz", "/_SWR/healthz", "/%5Fswr/healthz", "//_swr/healthz", "/_swr"} {
		r := get(t, n+path)
		if r.StatusCode != http.StatusNotFound || r.Header.Get("X-Cache") != "" {
			t.Errorf("GET %s through nginx: %d X-Cache=%q, want nginx's own 404", path, r.StatusCode, r.Header.Get("X-Cache"))
		}
	}
	if r := do(http.MethodPost, n+"/_swr/invalidate", "Authorization", "Bearer x"); r.StatusCode != http.StatusNotFound {
		t.Errorf("POST /_swr/invalidate through nginx: %d, want 404", r.StatusCode)
	}
	// Nor is the origin pool's management: not listed, added to, nor removed from.
	for _, m := range []struct{ method, path string }{
		{http.MethodGet, "/_swr/servers"}, {http.MethodPost, "/_swr/servers"}, {http.MethodGet, "/_swr/stats/detail"},
		{http.MethodDelete, "/_swr/servers/127.0.0.1/1"}, {http.MethodDelete, "/_swr/servers?url=http://x"}, {http.MethodGet, "/_SWR/servers"},
	} {
		if r := do(m.method, n+m.path, "Authorization", "Bearer x"); r.StatusCode != http.StatusNotFound || r.Header.Get("X-Cache") != "" {
			t.Errorf("%s %s through nginx: %d X-Cache=%q, want nginx's own 404", m.method, m.path, r.StatusCode, r.Header.Get("X-Cache"))
		}
	}
	if r := do("PURGE", n+path, "Authorization", "Bearer x"); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PURGE through nginx: %d, want 405", r.StatusCode)
	}
	if r := get(t, p.URL+"/_swr/healthz"); r.StatusCode != http.StatusOK {
		t.Errorf("GET /_swr/healthz on swrproxy itself: %d, want 200", r.StatusCode)
	}
	if r := get(t, n+"/_nginx/healthz"); r.StatusCode != http.StatusOK || r.Body != "ok\n" {
		t.Errorf("GET /_nginx/healthz: %d %q, want 200 ok", r.StatusCode, r.Body)
	}

	// The origin saw the cacheable URL once, with the client's address forwarded by nginx.
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 { // the MISS and /down
		t.Fatalf("origin got %d requests, want 2 (one fill, one /down)", len(seen))
	}
	h := seen[0]
	// A fill's answer is shared: it carries the client's address as nginx saw it (the last hop of
	// nginx's list, 127.0.0.1 here), not the list the client made up (203.0.113.7).
	if xff := h.Get("X-Forwarded-For"); xff != "127.0.0.1" {
		t.Errorf("X-Forwarded-For at the origin = %q, want the client's address as nginx saw it", xff)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto at the origin = %q, want http", got)
	}
	// The host is not part of the cache key (SWR_KEY_HOST=false), so a cacheable fill does not
	// forward it: a client's Host must not shape what everyone else is served.
	if got := h.Get("X-Forwarded-Host"); got != "" {
		t.Errorf("X-Forwarded-Host at the origin = %q on a cacheable fill, want none", got)
	}
}

func TestNginxRefusesGETAndHEADWithABody(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "origin") })
	p := startProxy(t, o.URL, nil)
	n := strings.TrimPrefix(startNginx(t, strings.TrimPrefix(p.URL, "http://")), "http://")
	for _, raw := range []string{
		"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"HEAD /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	} {
		res, err := rawhttp.Exchange(n, raw, 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Responses) != 1 || res.Responses[0].StatusCode != 400 || res.Responses[0].Header.Get("X-Cache") != "" {
			t.Errorf("%q through nginx: %d responses %v, want nginx's own 400", raw, len(res.Responses), res.Responses)
		}
	}
	if n := o.hits.Load(); n != 0 {
		t.Errorf("the origin got %d requests", n)
	}
	// Content-Length: 0 is no body.
	res, err := rawhttp.Exchange(n, "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if b := res.Bodies(); len(b) != 1 || b[0] != "origin" {
		t.Errorf("GET with Content-Length: 0 through nginx: %q", b)
	}
}
