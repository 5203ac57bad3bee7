package main

// swrproxy as a process: start-up settings and their errors, .env, the access log, and shutdown on
// SIGTERM or a cancelled context with the in-flight request finished.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"regexp"
	"runtime/debug"

	"github.com/swrproxy/swrproxy/config"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

func TestInFlightRequestCompletesOnShutdown(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release // in flight until shutdown is under way
		fmt.Fprint(w, "finished")
	})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before the origin's Close, which waits for the handler
	p := startProxy(t, o.URL, nil)
	got := make(chan reply, 1)
	go func() { got <- do(http.MethodGet, p.URL+"/slow") }()
	<-entered
	p.cancel() // what SIGTERM does through signal.NotifyContext
	testenv.WaitFor(t, 10*time.Second, "the listener to close", func() bool { return !accepting(p.URL) })
	releaseOnce()
	r := <-got
	if r.StatusCode != 200 || r.Body != "finished" {
		t.Fatalf("in-flight request: %d %q", r.StatusCode, trim(r.Body))
	}
	if err := <-p.done; err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
	p.done <- nil // for the cleanup's stop
	if accepting(p.URL) {
		t.Error("listener still accepting after shutdown")
	}
}

func TestAccessLogHasOneJSONLinePerRequest(t *testing.T) {
	t.Parallel()
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

func TestBadSettingsStopStartUpNamingTheSetting(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}, 1), make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release // in flight until shutdown is under way
		fmt.Fprint(w, "completed")
	})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before the origin's Close, which waits for the handler
	c := startChild(t, o.URL, nil, bin)
	cmd, base, logs, exited := c.cmd, "http://"+c.addr, c.logs, c.exited

	got := make(chan reply, 1)
	go func() { got <- do(http.MethodGet, base+"/slow") }()
	<-entered
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the listener to close", func() bool { return !accepting(base) })
	releaseOnce()
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
	t.Parallel()
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

// accepting reports whether a listener accepts connections at base (http://host:port).
func accepting(base string) bool {
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

func TestVersionFlagPrintsVersionAndCommitAndExitsZero(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--version")
	cmd.Dir = t.TempDir()                           // no .env there
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no SWR_UPSTREAM: --version needs no config
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("swrproxy --version: %v, want exit 0\n%s", err, out)
	}
	// go build records the revision from the checkout (or nothing outside one).
	if !regexp.MustCompile(`^swrproxy dev \(([0-9a-f]{40}(-dirty)?|unknown)\)\n$`).Match(out) {
		t.Errorf("swrproxy --version printed %q, want \"swrproxy dev (<commit>)\\n\"", out)
	}
}

func TestCommitIsTheRecordedRevisionMarkedDirtyOrUnknown(t *testing.T) {
	const rev = "0390ff1511b9f0fb67867c53e098f70e3f6a9dd7"
	tests := []struct {
		settings []debug.BuildSetting
		ok       bool
		want     string
	}{
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}, true, rev},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}, {Key: "vcs.revision", Value: rev}}, true, rev + "-dirty"},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}}, true, "unknown"},
		{[]debug.BuildSetting{{Key: "-compiler", Value: "gc"}}, true, "unknown"},
		{nil, false, "unknown"},
	}
	for _, tt := range tests {
		if got := commit(&debug.BuildInfo{Settings: tt.settings}, tt.ok); got != tt.want {
			t.Errorf("commit(%v, %v) = %q, want %q", tt.settings, tt.ok, got, tt.want)
		}
	}
}

// TestRunningOutOfFileDescriptorsDoesNotEndTheProcess: a client that opens connections until
// swrproxy has no descriptor left made its accept fail with EMFILE, which fasthttp takes as the
// end of the listener, and the process exited (security review). Now the listener waits and
// tries again, and serves once the connections are gone.
func TestRunningOutOfFileDescriptorsDoesNotEndTheProcess(t *testing.T) {
	t.Parallel()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatal("prlimit is missing: apt-get install -y util-linux")
	}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	child := startChild(t, o.URL, nil, prlimit, "--nofile=64:64", bin) // prlimit execs bin: same process
	base, logs, exited := "http://"+child.addr, child.logs, child.exited

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 120 { // more than its 64 descriptors; the kernel's backlog takes the rest
		c, err := net.DialTimeout("tcp", child.addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	testenv.WaitFor(t, 10*time.Second, "an accept to fail for want of descriptors", func() bool {
		return strings.Contains(logs.String(), "too many open files")
	})
	select {
	case err := <-exited:
		t.Fatalf("swrproxy exited (%v) when it ran out of descriptors:\n%s", err, logs.String())
	default:
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	testenv.WaitFor(t, 10*time.Second, "swrproxy to serve again", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("swrproxy exited (%v) after it ran out of descriptors:\n%s", err, logs.String())
		default:
		}
		r := do(http.MethodGet, base+"/x")
		return r.StatusCode == 200 && r.Body == "ok"
	})
}

// GOMEMLIMIT follows the configured bounds unless the environment sets it: L1, the refresh
// tracker and queue (a quarter of L1), half of L1 again for garbage, 16 MiB of small bounded
// structures and a 96 MiB base, plus each Wasm instance's memory when a module is loaded.
func TestTheMemoryLimitFollowsSWR_L1_MAX_BYTES(t *testing.T) {
	cfg := config.Config{L1MaxBytes: 256 << 20}
	if limit, derived := memoryLimit(cfg, ""); !derived || limit != 256<<20*7/4+112<<20 {
		t.Errorf("memoryLimit(256 MiB L1) = %d, %v; want %d", limit, derived, 256<<20*7/4+112<<20)
	}
	cfg.PolicyWasm, cfg.PolicyPool = "/p.wasm", 2
	if limit, _ := memoryLimit(cfg, ""); limit != 256<<20*7/4+112<<20+2*64<<20 {
		t.Errorf("with two Wasm instances: %d", limit)
	}
	if _, derived := memoryLimit(cfg, "1GiB"); derived {
		t.Error("a GOMEMLIMIT in the environment was overridden")
	}
}
