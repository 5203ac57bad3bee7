package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestFlagsOverrideTheEnvironment(t *testing.T) {
	m := map[string]string{
		"SWR_UPSTREAM":    "http://env-origin",
		"SWR_LISTEN":      ":7000",
		"SWR_DEFAULT_TTL": "1h",
		"SWR_KEY_HOST":    "false",
		"SWR_ACCESS_LOG":  "true",
		"SWR_REDIS_URL":   "redis://env-redis:6379/0",
	}
	c := mustLoad(t, m,
		"--upstream", "http://flag-origin:81",
		"--listen=:9000",
		"-default-ttl", "5s",
		"--key-host",
		"--access-log=false",
		"--redis-url=",
		"--invalidate-secret", testSecret,
		"--l1-max-bytes=1MiB")
	if len(c.Upstreams) != 1 || c.Upstreams[0].String() != "http://flag-origin:81" {
		t.Errorf("Upstreams = %v, want [http://flag-origin:81]", c.Upstreams)
	}
	if c.Listen != ":9000" {
		t.Errorf("Listen = %q, want :9000", c.Listen)
	}
	if c.DefaultTTL != 5*time.Second {
		t.Errorf("DefaultTTL = %v, want 5s", c.DefaultTTL)
	}
	if !c.KeyHost {
		t.Error("KeyHost = false, want true from a bare --key-host")
	}
	if c.AccessLog {
		t.Error("AccessLog = true, want false from --access-log=false")
	}
	if c.RedisURL != "" {
		t.Errorf("RedisURL = %q, want empty (L1 only) from --redis-url=", c.RedisURL)
	}
	if c.InvalidateSecret != testSecret {
		t.Errorf("InvalidateSecret = %q, want the flag's", c.InvalidateSecret)
	}
	if c.L1MaxBytes != 1<<20 {
		t.Errorf("L1MaxBytes = %d, want %d", c.L1MaxBytes, 1<<20)
	}
}

func TestFlagNamesAreTheVariablesInKebabCase(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Settings {
		want := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(s.Env, "SWR_"), "_", "-"))
		if s.Flag != want {
			t.Errorf("%s: flag %q, want %q", s.Env, s.Flag, want)
		}
		if seen[s.Env] {
			t.Errorf("%s listed twice", s.Env)
		}
		seen[s.Env] = true
		if s.Help == "" {
			t.Errorf("%s has no help", s.Env)
		}
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		_, err := load(env(nil), []string{arg})
		if !errors.Is(err, ErrHelp) {
			t.Fatalf("load(%s) error = %v, want ErrHelp", arg, err)
		}
		if err.Error() != Usage() {
			t.Errorf("load(%s) error text is not the usage", arg)
		}
	}
	u := Usage()
	for _, s := range Settings {
		if !strings.Contains(u, "--"+s.Flag+" ") && !strings.Contains(u, "--"+s.Flag+"[") {
			t.Errorf("usage does not list --%s", s.Flag)
		}
		if !strings.Contains(u, s.Env+",") {
			t.Errorf("usage does not list %s", s.Env)
		}
		if s.Default != "" && !strings.Contains(u, fmt.Sprintf("default %q", s.Default)) {
			t.Errorf("usage does not give %s's default %q", s.Env, s.Default)
		}
	}
	if !strings.Contains(u, "SWR_UPSTREAM, required") {
		t.Error("usage does not say SWR_UPSTREAM is required")
	}
}

func TestVersionFlagIsAnswerNotAnError(t *testing.T) {
	_, err := load(env(map[string]string{}), []string{"--version"})
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("--version: %v, want ErrVersion (even without SWR_UPSTREAM)", err)
	}
	if !strings.Contains(Usage(), "--version") {
		t.Error("the usage does not list --version")
	}
}
