package main

// The deployment and build files: docker-compose.yml as docker-compose reads it, .env.example against
// config.Settings, the demo flow a new user follows after `docker compose up` (on loopback), and the
// Makefile's fuzz list against the fuzz targets.

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/config"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// TestMakeFuzzRunsEveryFuzzTarget keeps the Makefile's list in step with the code: every parser of
// outside bytes has a fuzz target, and `make fuzz` runs each one.
func TestMakeFuzzRunsEveryFuzzTarget(t *testing.T) {
	t.Parallel()
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

// composeFiles are the files docker-compose.yml refers to that must exist for `config`.
var composeFiles = []string{"docker-compose.yml", "Dockerfile", ".dockerignore", nginxTemplate}

func dockerCompose(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose not found: run `make test` (it installs it) or apt-get install docker-compose")
	}
	return p
}

// TestDockerComposeConfigIsValid runs `docker-compose config` on a copy of the deployment files,
// with .env made from .env.example as the README says.
func TestDockerComposeConfigIsValid(t *testing.T) {
	t.Parallel()
	bin := dockerCompose(t)
	dir := t.TempDir()
	for _, f := range composeFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	compose := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--project-directory", dir, "-f", filepath.Join(dir, "docker-compose.yml")}, args...)...)
		cmd.Dir = dir
		// Nothing from the caller's environment (COMPOSE_FILE, SWR_*, …) may leak in.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatalf("docker-compose %s: %v", strings.Join(args, " "), err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("docker-compose %s: %v\n%s%s", strings.Join(args, " "), err, &stderr, &stdout)
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("docker-compose %s did not finish within 60s", strings.Join(args, " "))
		}
		return stdout.String()
	}

	// A fresh clone has no .env: docker compose up must work with the defaults alone.
	compose("config", "-q")
	fresh := compose("config")
	for _, want := range []string{"SWR_UPSTREAM: http://origin:9000", "SWR_REDIS_URL: redis://redis:6379/0"} {
		if !strings.Contains(fresh, want) {
			t.Errorf("without .env, docker-compose config lacks %q\n%s", want, fresh)
		}
	}

	// Without .env the deployment is a valid configuration (no placeholder secret: the private
	// endpoints are off), the private endpoints are on their own listener, and the origin posts
	// its invalidations there.
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(SWR_[A-Z_]+): (.*)$`).FindAllStringSubmatch(fresh, -1) {
		vars[m[1]] = strings.Trim(m[2], `'"`)
	}
	if _, err := config.LoadLookup(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, nil); err != nil {
		t.Errorf("without .env, swrproxy's environment is not a valid configuration: %v", err)
	}
	for _, want := range []string{"SWR_ADMIN_LISTEN: :9901", "SWR_ADMIN_URL: http://swrproxy:9901",
		// swrproxy believes the forwarding fields of nginx's fixed address, and of nobody else.
		"ipv4_address: 10.89.64.10", "SWR_TRUSTED_PROXIES: 10.89.64.10", "subnet: 10.89.64.0/24"} {
		if !strings.Contains(fresh, want) {
			t.Errorf("without .env, docker-compose config lacks %q", want)
		}
	}
	if strings.Contains(fresh, "change-me") {
		t.Error("docker-compose.yml still carries a placeholder secret")
	}

	// With .env copied from .env.example and one line changed, as the README says.
	env, err := os.ReadFile(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	// The defaults of docker-compose.yml are the values of .env.example, setting by setting, but
	// for what wires the services together, which compose fixes itself (composeWiring).
	for line := range strings.Lines(string(env)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") || !strings.HasPrefix(k, "SWR_") {
			continue
		}
		if w, fixed := composeWiring[k]; fixed {
			if !strings.Contains(fresh, k+": "+w+"\n") && !strings.Contains(fresh, k+": '"+w+"'\n") {
				t.Errorf("docker-compose config does not fix %s to %s", k, w)
			}
			continue
		}
		if !strings.Contains(fresh, k+": "+v+"\n") && !strings.Contains(fresh, k+": '"+v+"'\n") && !strings.Contains(fresh, k+": \""+v+"\"\n") {
			t.Errorf("without .env, the container does not get %s=%s (the .env.example value)", k, v)
		}
	}
	env = bytes.Replace(env, []byte("# SWR_UPSTREAM=https://origin-a.example,https://origin-b.example"), []byte("SWR_UPSTREAM=http://my-origin:8081"), 1)
	env = append(env, []byte("SWR_REFRESH_WORKERS=3\nSWR_REDIS_URL=redis://127.0.0.1:6379/0\n")...)
	if err := os.WriteFile(filepath.Join(dir, ".env"), env, 0o600); err != nil {
		t.Fatal(err)
	}
	compose("config", "-q")

	services := strings.Fields(compose("config", "--services"))
	slices.Sort(services)
	if want := []string{"nginx", "origin", "redis", "swrproxy"}; !slices.Equal(services, want) {
		t.Errorf("services = %q, want %q", services, want)
	}
	out := compose("config")
	// Only nginx is published on every interface; the admin listener (the admin page) on the
	// loopback alone; redis and the origin stay on the compose network.
	admin := strings.Contains(out, "127.0.0.1::9901") || strings.Contains(out, "host_ip: 127.0.0.1") // docker-compose v1 / v2 forms
	if n := strings.Count(out, "published:") + strings.Count(out, "127.0.0.1::9901"); n < 1 || n > 2 || !admin {
		t.Errorf("%d published ports, want 2 (nginx 8080, and the admin listener 9901 on 127.0.0.1 only)\n%s", n, out)
	}
	for _, want := range []string{
		"SWR_UPSTREAM: http://my-origin:8081", // the one line a user changes in .env
		"SWR_REFRESH_WORKERS: '3'",            // any setting of .env reaches the container
		"SWR_REDIS_URL: redis://redis:6379/0", // compose's wiring, whatever .env says
		"condition: service_healthy",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("docker-compose config lacks %q\n%s", want, out)
		}
	}
	// The nginx service defines every placeholder of the template.
	tmpl, err := os.ReadFile(nginxTemplate)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range nginxTemplateVars.FindAllStringSubmatch(string(tmpl), -1) {
		if !strings.Contains(out, m[1]+":") {
			t.Errorf("the template uses ${%s}, which docker-compose.yml does not set", m[1])
		}
	}
	// Every build target the compose file names is a stage of the Dockerfile.
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	targets := buildTargets(out)
	if len(targets) != 2 {
		t.Errorf("build targets = %q, want swrproxy's and the origin's", targets)
	}
	for _, target := range targets {
		if !regexp.MustCompile(`(?im)^FROM\s+\S+\s+AS\s+` + regexp.QuoteMeta(target) + `\s*$`).Match(dockerfile) {
			t.Errorf("docker-compose.yml builds target %q, which the Dockerfile does not define", target)
		}
	}
}

// buildTargets returns the values of target: inside the build: blocks of docker-compose config's
// YAML output.
func buildTargets(yaml string) []string {
	var targets []string
	indent := -1 // of the build: line while inside its block
	for line := range strings.Lines(yaml) {
		line = strings.TrimRight(line, "\n")
		trimmed := strings.TrimLeft(line, " ")
		depth := len(line) - len(trimmed)
		switch {
		case trimmed == "build:":
			indent = depth
		case indent >= 0 && depth <= indent:
			indent = -1
		case indent >= 0 && strings.HasPrefix(trimmed, "target: "):
			targets = append(targets, strings.TrimPrefix(trimmed, "target: "))
		}
	}
	return targets
}

// TestDockerComposeEnvExampleListsEverySetting checks .env.example against config.Settings: every
// setting once, with a comment line above it, at its default unless compose needs another value,
// and the whole file a valid configuration.
func TestDockerComposeEnvExampleListsEverySetting(t *testing.T) {
	t.Parallel()
	f, err := os.Open(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	values := map[string]string{}
	commented := map[string]bool{} // required settings, shown as "# SWR_X=example"
	var order []string
	prev := ""
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if k, _, ok := strings.Cut(strings.TrimPrefix(text, "# "), "="); ok && strings.HasPrefix(text, "# SWR_") && !strings.Contains(k, " ") {
			commented[k] = true
			order = append(order, k)
		}
		if k, v, ok := strings.Cut(text, "="); ok && !strings.HasPrefix(text, "#") {
			if _, dup := values[k]; dup {
				t.Errorf("line %d: %s is set twice", line, k)
			}
			if !strings.HasPrefix(prev, "# ") {
				t.Errorf("line %d: %s has no comment line above it", line, k)
			}
			if strings.ContainsAny(v, `"'#`) || strings.TrimSpace(v) != v {
				t.Errorf("line %d: %s=%s: write values bare (env_file takes quotes and comments literally)", line, k, v)
			}
			values[k] = v
			order = append(order, k)
		}
		prev = text
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// Every value is swrproxy's default, so the file works without Docker as with it (compose
	// fixes its own wiring, composeWiring); a required setting is there, commented out.
	var settings []string
	for _, s := range config.Settings {
		settings = append(settings, s.Env)
		v, ok := values[s.Env]
		switch {
		case s.Required && commented[s.Env] && !ok:
		case s.Required:
			t.Errorf(".env.example: %s is required: show it commented out (# %s=…), so the file fits both paths", s.Env, s.Env)
		case !ok:
			t.Errorf(".env.example lacks %s (default %q: %s)", s.Env, s.Default, s.Help)
		case v != s.Default:
			t.Errorf(".env.example: %s=%s, want the default %s", s.Env, v, s.Default)
		}
	}
	for _, k := range order {
		if strings.HasPrefix(k, "SWR_") && !slices.Contains(settings, k) {
			t.Errorf(".env.example sets %s, which is not a setting of config.Settings", k)
		}
	}
	values["SWR_UPSTREAM"] = "http://127.0.0.1:9000" // the one line a user writes
	if _, err := config.LoadLookup(func(k string) (string, bool) { v, ok := values[k]; return v, ok }, nil); err != nil {
		t.Errorf(".env.example with SWR_UPSTREAM set is not a valid configuration: %v", err)
	}
}

// composeWiring are the settings docker-compose.yml fixes itself, whatever .env says: how its
// services reach one another.
var composeWiring = map[string]string{
	"SWR_LISTEN":          ":8000",
	"SWR_REDIS_URL":       "redis://redis:6379/0",
	"SWR_ADMIN_LISTEN":    ":9901",
	"SWR_TRUSTED_PROXIES": "10.89.64.10",
}

// buildDemoOrigin builds examples/origin and returns the binary.
func buildDemoOrigin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "origin")
	if out, err := exec.Command("go", "build", "-o", bin, "./examples/origin").CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/origin: %v\n%s", err, out)
	}
	return bin
}

// startDemoOrigin runs the demo origin bin on addr, posting invalidations to adminURL.
func startDemoOrigin(t *testing.T, bin, addr, adminURL, secret string) {
	t.Helper()
	var output bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Env = []string{
		"ORIGIN_LISTEN=" + addr, "ORIGIN_DELAY=50ms", "ORIGIN_TICK=1h", // no drift during the test
		"SWR_ADMIN_URL=" + adminURL, "SWR_INVALIDATE_SECRET=" + secret,
	}
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the demo origin: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	testenv.WaitFor(t, 10*time.Second, "the demo origin to answer /healthz", func() bool {
		if do(http.MethodGet, "http://"+addr+"/healthz").StatusCode == http.StatusOK {
			return true
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the demo origin exited at start: %v\n%s", err, &output)
		default:
		}
		return false
	})
}

// TestTheDemoOriginsEditShowsUpThroughNginx is what a new user does after `docker compose up`, on loopback: the
// demo origin behind swrproxy behind nginx; MISS, HIT, 304, then an edit whose invalidation
// reaches swrproxy directly and the new price shows up through nginx.
func TestTheDemoOriginsEditShowsUpThroughNginx(t *testing.T) {
	t.Parallel()
	// The ports are picked just before they are taken, the origin's before swrproxy opens any:
	// a listener on port 0 (swrproxy's, another test's) could be given a port FreePort let go
	// (it was, once, while the origin was being built: "address already in use").
	bin := buildDemoOrigin(t)
	originAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	adminAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	startDemoOrigin(t, bin, originAddr, "http://"+adminAddr, secret)
	// As in docker-compose.yml: the private endpoints on their own listener, where the origin posts.
	p := startProxy(t, "http://"+originAddr, map[string]string{"SWR_INVALIDATE_SECRET": secret, "SWR_ADMIN_LISTEN": adminAddr})
	n := startNginx(t, strings.TrimPrefix(p.URL, "http://"))
	const path = "/api/prices?pair=ALGO-USD"

	r := get(t, n+path)
	expect(t, r, 200, "MISS", "")
	if !strings.Contains(r.Body, `"price":0.1834`) {
		t.Fatalf("first answer %q, want the demo price 0.1834", r.Body)
	}
	if sk := r.Header.Get("Surrogate-Key"); sk != "" {
		t.Errorf("Surrogate-Key %q reached the client; swrproxy must keep it", sk)
	}
	expect(t, get(t, n+path), 200, "HIT", r.Body)
	expect(t, get(t, n+path, "If-None-Match", r.Header.Get("ETag")), http.StatusNotModified, "HIT", "")

	// The edit goes through nginx and swrproxy (a POST is passed through) to the origin, which
	// posts {"tags":["pair-ALGO-USD"],"mode":"auto"} to swrproxy's /_swr/invalidate.
	e := do(http.MethodPost, n+"/admin/edit?pair=ALGO-USD&price=0.5")
	if e.StatusCode != http.StatusOK || !strings.Contains(e.Body, `"matched":1`) {
		t.Fatalf("edit: %d %q, want 200 and swrproxy's reply matching the cached key", e.StatusCode, e.Body)
	}
	testenv.WaitFor(t, 5*time.Second, "the edited price through nginx", func() bool {
		return strings.Contains(get(t, n+path).Body, `"price":0.5,`)
	})
	r = get(t, n+path)
	expect(t, r, 200, "HIT", "")
	if !strings.Contains(r.Body, `"price":0.5,`) {
		t.Errorf("after the refresh: %q, want price 0.5", r.Body)
	}
}
