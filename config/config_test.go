package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over m, as main's os.Getenv.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// lookup returns a LookupEnv over m, as main's os.LookupEnv.
func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustLoad(t *testing.T, m map[string]string, args ...string) Config {
	t.Helper()
	c, err := Load(env(m), args)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// testSecret is a valid SWR_INVALIDATE_SECRET (32 random-looking bytes).
const testSecret = "9f86d081884c7d659a2feaa0c55ad015"

func TestDefaultsApplyWhenOnlyUpstreamIsSet(t *testing.T) {
	got := mustLoad(t, map[string]string{"SWR_UPSTREAM": "http://origin:8080"})
	want := Config{
		Listen:               ":8000",
		Upstream:             mustURL(t, "http://origin:8080"),
		RedisURL:             "redis://127.0.0.1:6379/0",
		L1MaxBytes:           256 << 20,
		L1MaxTTL:             30 * time.Second,
		DefaultTTL:           0,
		StaleWhileRevalidate: 60 * time.Second,
		StaleIfError:         time.Hour,
		RefreshWindow:        5 * time.Minute,
		RefreshWorkers:       8,
		MaxObjectBytes:       8 << 20,
		UpstreamTimeout:      30 * time.Second,
		TrustedProxies:       []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		LogLevel:             slog.LevelInfo,
		LogFormat:            "text",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
	}
	if got.RedisAddrs() != nil {
		t.Errorf("RedisAddrs = %q, want nil for the URL form", got.RedisAddrs())
	}
}

// allSet sets every setting to a value other than its default.
var allSet = map[string]string{
	"SWR_LISTEN":                 "127.0.0.1:9000",
	"SWR_UPSTREAM":               "https://origin.example:8443/api/v1/",
	"SWR_REDIS_URL":              "rediss://:pw@redis:6380/2",
	"SWR_L1_MAX_BYTES":           "1.5GiB",
	"SWR_L1_MAX_TTL":             "10",
	"SWR_DEFAULT_TTL":            "45s",
	"SWR_STALE_WHILE_REVALIDATE": "1m30s",
	"SWR_STALE_IF_ERROR":         "2h",
	"SWR_REFRESH_WINDOW":         "0",
	"SWR_REFRESH_WORKERS":        "1024",
	"SWR_MAX_OBJECT_BYTES":       "512 KiB",
	"SWR_UPSTREAM_TIMEOUT":       "2.5",
	"SWR_INVALIDATE_SECRET":      testSecret,
	"SWR_ADMIN_LISTEN":           "127.0.0.1:9001",
	"SWR_KEY_HOST":               "yes",
	"SWR_TRUSTED_PROXIES":        "10.0.0.0/8, 192.168.1.7,::ffff:172.16.0.1",
	"SWR_LOG_LEVEL":              "DEBUG",
	"SWR_LOG_FORMAT":             "JSON",
	"SWR_ACCESS_LOG":             "on",
}

func TestEverySettingIsReadFromTheEnvironment(t *testing.T) {
	if len(allSet) != len(Settings) {
		t.Fatalf("the test sets %d settings, Settings has %d", len(allSet), len(Settings))
	}
	got := mustLoad(t, allSet)
	want := Config{
		Listen:               "127.0.0.1:9000",
		Upstream:             mustURL(t, "https://origin.example:8443/api/v1"),
		RedisURL:             "rediss://:pw@redis:6380/2",
		L1MaxBytes:           3 << 29,
		L1MaxTTL:             10 * time.Second,
		DefaultTTL:           45 * time.Second,
		StaleWhileRevalidate: 90 * time.Second,
		StaleIfError:         2 * time.Hour,
		RefreshWindow:        0,
		RefreshWorkers:       1024,
		MaxObjectBytes:       512 << 10,
		UpstreamTimeout:      2500 * time.Millisecond,
		InvalidateSecret:     testSecret,
		AdminListen:          "127.0.0.1:9001",
		KeyHost:              true,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
			netip.MustParsePrefix("172.16.0.1/32")},
		LogLevel:  slog.LevelDebug,
		LogFormat: "json",
		AccessLog: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
	}
}

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
	if got, want := c.Upstream.String(), "http://flag-origin:81"; got != want {
		t.Errorf("Upstream = %q, want %q", got, want)
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

func TestEmptyVariableMeansDefaultButEmptyRedisMeansL1OnlyWithLookup(t *testing.T) {
	m := map[string]string{
		"SWR_UPSTREAM":     "http://origin",
		"SWR_REDIS_URL":    "",
		"SWR_DEFAULT_TTL":  "",
		"SWR_LISTEN":       "  ",
		"SWR_ADMIN_LISTEN": "",
	}
	c, err := LoadLookup(lookup(m), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisURL != "" || c.RedisAddrs() != nil {
		t.Errorf("LoadLookup: RedisURL = %q, want empty (L1 only)", c.RedisURL)
	}
	if c.DefaultTTL != 0 || c.Listen != ":8000" {
		t.Errorf("LoadLookup: DefaultTTL, Listen = %v, %q; want the defaults", c.DefaultTTL, c.Listen)
	}

	// getenv cannot tell empty from unset: empty is the default.
	c = mustLoad(t, m)
	if c.RedisURL != "redis://127.0.0.1:6379/0" {
		t.Errorf("Load: RedisURL = %q, want the default", c.RedisURL)
	}
}

func TestValuesAreTrimmed(t *testing.T) {
	c := mustLoad(t, map[string]string{"SWR_UPSTREAM": " http://origin ", "SWR_LOG_LEVEL": " warn\n"})
	if c.Upstream.String() != "http://origin" || c.LogLevel != slog.LevelWarn {
		t.Errorf("Upstream, LogLevel = %q, %v", c.Upstream, c.LogLevel)
	}
}

var badValues = []struct {
	env, value string
	why        string // a word the message must contain
}{
	{"SWR_LISTEN", "8000", "host:port"},
	{"SWR_LISTEN", ":http", "port"},
	{"SWR_LISTEN", ":65536", "port"},
	{"SWR_UPSTREAM", "origin:8080", "scheme"},
	{"SWR_UPSTREAM", "ftp://origin", "scheme"},
	{"SWR_UPSTREAM", "http://", "host"},
	{"SWR_UPSTREAM", "http:///path", "host"},
	{"SWR_UPSTREAM", "http://:8080", "host"},
	{"SWR_UPSTREAM", "http://origin/?a=1", "query"},
	{"SWR_UPSTREAM", "http://origin/?", "query"},
	{"SWR_UPSTREAM", "http://origin/#top", "fragment"},
	{"SWR_UPSTREAM", "http://origin:0", "port"},
	{"SWR_UPSTREAM", "http://origin:99999", "port"},
	{"SWR_UPSTREAM", "http://%zz", "URL"},
	{"SWR_REDIS_URL", "http://redis:6379", "scheme"},
	{"SWR_REDIS_URL", "redis://", "host"},
	{"SWR_REDIS_URL", "redis://redis:6379/zero", "database"},
	{"SWR_REDIS_URL", "redis://redis:6379/-1", "database"},
	{"SWR_REDIS_URL", "redis://redis:0/0", "port"},
	{"SWR_REDIS_URL", "redis", "host:port"},
	{"SWR_REDIS_URL", "a:6379,", "host:port"},
	{"SWR_REDIS_URL", "a:6379,b", "host:port"},
	{"SWR_REDIS_URL", ":6379", "host:port"},
	{"SWR_REDIS_URL", "a:0", "port"},
	{"SWR_REDIS_URL", "a/b:6379", "host:port"},
	{"SWR_REDIS_URL", "a:65536", "port"},
	{"SWR_L1_MAX_BYTES", "lots", "size"},
	{"SWR_L1_MAX_BYTES", "0", "more than 0"},
	{"SWR_L1_MAX_BYTES", "-1", "negative"},
	{"SWR_L1_MAX_BYTES", "1TB", "unit"},
	{"SWR_L1_MAX_TTL", "0", "more than 0"},
	{"SWR_L1_MAX_TTL", "0s", "more than 0"},
	{"SWR_DEFAULT_TTL", "ten", "duration"},
	{"SWR_DEFAULT_TTL", "-5s", "negative"},
	{"SWR_STALE_WHILE_REVALIDATE", "1d", "duration"},
	{"SWR_STALE_IF_ERROR", "-1", "negative"},
	{"SWR_REFRESH_WINDOW", "5 minutes", "duration"},
	{"SWR_REFRESH_WORKERS", "0", "1 to 1024"},
	{"SWR_REFRESH_WORKERS", "1025", "1 to 1024"},
	{"SWR_REFRESH_WORKERS", "eight", "1 to 1024"},
	{"SWR_REFRESH_WORKERS", "2.5", "1 to 1024"},
	{"SWR_MAX_OBJECT_BYTES", "4GiB", "less than 4GiB"},
	{"SWR_MAX_OBJECT_BYTES", "0", "more than 0"},
	{"SWR_MAX_OBJECT_BYTES", "1.5", "whole"},
	{"SWR_UPSTREAM_TIMEOUT", "0", "more than 0"},
	{"SWR_ADMIN_LISTEN", "admin", "host:port"},
	{"SWR_KEY_HOST", "maybe", "boolean"},
	{"SWR_LOG_LEVEL", "verbose", "debug, info, warn or error"},
	{"SWR_LOG_FORMAT", "xml", "text or json"},
	{"SWR_ACCESS_LOG", "2", "boolean"},
}

func TestBadValueErrorNamesTheVariableAndTheValue(t *testing.T) {
	for _, tt := range badValues {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			m := map[string]string{"SWR_UPSTREAM": "http://origin", tt.env: tt.value}
			_, err := Load(env(m), nil)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			msg := err.Error()
			if want := fmt.Sprintf("config: %s=%q", tt.env, tt.value); !strings.HasPrefix(msg, want) {
				t.Errorf("error %q does not start with %q", msg, want)
			}
			if !strings.Contains(msg, tt.why) {
				t.Errorf("error %q does not say %q", msg, tt.why)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line", msg)
			}
		})
	}
}

func TestBadFlagValueErrorNamesTheFlag(t *testing.T) {
	_, err := Load(env(map[string]string{"SWR_UPSTREAM": "http://origin"}), []string{"--default-ttl=ten"})
	want := `config: SWR_DEFAULT_TTL="ten" (from --default-ttl): not a duration (use Go syntax like 90s or 5m, or a number of seconds)`
	if err == nil || err.Error() != want {
		t.Errorf("Load error = %v, want %s", err, want)
	}
}

func TestEnvironmentErrorMatchesTheContract(t *testing.T) {
	_, err := Load(env(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_DEFAULT_TTL": "ten"}), nil)
	want := `config: SWR_DEFAULT_TTL="ten": not a duration (use Go syntax like 90s or 5m, or a number of seconds)`
	if err == nil || err.Error() != want {
		t.Errorf("Load error = %v, want %s", err, want)
	}
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	m := map[string]string{
		"SWR_DEFAULT_TTL":     "ten",
		"SWR_REFRESH_WORKERS": "0",
		"SWR_LOG_FORMAT":      "xml",
	}
	_, err := Load(env(m), []string{"--listen", "nowhere"})
	if err == nil {
		t.Fatal("Load succeeded, want errors")
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %T is not an errors.Join", err)
	}
	if got := len(joined.Unwrap()); got != 5 {
		t.Errorf("%d problems reported, want 5:\n%v", got, err)
	}
	for _, want := range []string{
		"SWR_UPSTREAM is required",
		`SWR_DEFAULT_TTL="ten"`,
		`SWR_REFRESH_WORKERS="0"`,
		`SWR_LOG_FORMAT="xml"`,
		`SWR_LISTEN="nowhere" (from --listen)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %s:\n%v", want, err)
		}
	}
}

func TestMissingUpstreamIsAnError(t *testing.T) {
	want := "config: SWR_UPSTREAM is required (the origin base URL, e.g. http://origin:8080)"
	for _, args := range [][]string{nil, {"--upstream="}} {
		_, err := Load(env(nil), args)
		if err == nil || err.Error() != want {
			t.Errorf("Load(%q) error = %v, want %s", args, err, want)
		}
	}
}

func TestUpstreamPathBecomesAPrefix(t *testing.T) {
	tests := []struct{ in, url, path string }{
		{"http://origin", "http://origin", ""},
		{"http://origin/", "http://origin", ""},
		{"HTTPS://Origin:8443//", "https://Origin:8443", ""},
		{"http://origin/api/", "http://origin/api", "/api"},
		{"http://origin/a%2Fb/", "http://origin/a%2Fb", "/a/b"},
		{"http://[::1]:8080/x", "http://[::1]:8080/x", "/x"},
	}
	for _, tt := range tests {
		c := mustLoad(t, map[string]string{"SWR_UPSTREAM": tt.in})
		if got := c.Upstream.String(); got != tt.url {
			t.Errorf("%s: Upstream = %q, want %q", tt.in, got, tt.url)
		}
		if c.Upstream.Path != tt.path {
			t.Errorf("%s: Upstream.Path = %q, want %q", tt.in, c.Upstream.Path, tt.path)
		}
	}
}

func TestCredentialsAreNeverEchoed(t *testing.T) {
	tests := []struct{ env, value, secret string }{
		{"SWR_UPSTREAM", "http://user:hunter2@origin", "hunter2"},
		{"SWR_REDIS_URL", "redis://:hunter2@redis/db", "hunter2"},
		{"SWR_REDIS_URL", "redis://:hun#ter2@redis:6379/0", "ter2"},
		{"SWR_REDIS_URL", "user:hunter2@a:1", "hunter2"},
		{"SWR_REDIS_URL", "hunter2@a:1", "hunter2"},
		{"SWR_INVALIDATE_SECRET", "hunter2 ", "hunter2"},
		{"SWR_INVALIDATE_SECRET", "hun\tter2", "ter2"},
	}
	for _, tt := range tests {
		m := map[string]string{"SWR_UPSTREAM": "http://origin", tt.env: tt.value}
		_, err := Load(env(m), nil)
		if err == nil {
			t.Errorf("%s=%q: Load succeeded, want an error", tt.env, tt.value)
			continue
		}
		if !strings.Contains(err.Error(), tt.env) || strings.Contains(err.Error(), tt.secret) {
			t.Errorf("%s=%q: error %q must name the variable and hide %q", tt.env, tt.value, err, tt.secret)
		}
	}
}

// The hardening issue: no working secret out of the box. A placeholder, a short or a repetitive
// secret stops start-up with a message that says how to make one; empty turns the endpoints off.
func TestAWeakInvalidationSecretStopsStartUp(t *testing.T) {
	for _, v := range []string{
		"change-me-to-a-long-random-string", // the old .env.example and docker-compose.yml default
		"CHANGEME-0123456789abcdef0123456789",
		"please-replace-me-with-something-long",
		"9f2c41d07be35a68e1c4",                 // 20 random bytes: too short
		"0123456789abcdef0123456789abcde",      // 31 bytes
		"abababababababababababababababababab", // long, but two characters
		// The security review's list:
		"abcdefghabcdefghabcdefghabcdefgh", "1234567812345678123456781234567812345678",
		"passwordpasswordpassword12345678", "supersecretsupersecretsupersecret123",
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1234567", "${SWR_INVALIDATE_SECRET}aaaaaaaaaaaaaaaaaaaaaaaa",
		"ch\u0430nge-me-to-a-long-random-string", // with a Cyrillic а
	} {
		_, err := Load(env(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_INVALIDATE_SECRET": v}), nil)
		if err == nil {
			t.Errorf("SWR_INVALIDATE_SECRET=%q accepted", v)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "SWR_INVALIDATE_SECRET") || !strings.Contains(msg, "openssl rand -hex 32") || strings.Contains(msg, v) {
			t.Errorf("SWR_INVALIDATE_SECRET=%q: error %q must name the setting and say how to make a secret, without echoing it", v, msg)
		}
	}
	for _, v := range []string{"", testSecret, "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5",
		"4f1c9e0b7a2d58e6c3b1a09f7e6d5c4b3a291807f6e5d4c3b2a1908f7e6d5c4b", // openssl rand -hex 32
		"q3Vt8Kx1Lp0Zs7Yw2Rn5Hd9Jf4Bg6Mc1Xa8Ue3Oi7Wl=",                     // openssl rand -base64 32
	} {
		c, err := LoadLookup(lookup(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_INVALIDATE_SECRET": v}), nil)
		if err != nil || c.InvalidateSecret != v {
			t.Errorf("SWR_INVALIDATE_SECRET=%q: %q, %v; want it accepted", v, c.InvalidateSecret, err)
		}
	}
}

func TestTrustedProxiesAreIPsOrPrefixes(t *testing.T) {
	c, err := LoadLookup(lookup(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_TRUSTED_PROXIES": ""}), nil)
	if err != nil || len(c.TrustedProxies) != 0 {
		t.Errorf("empty SWR_TRUSTED_PROXIES: %v, %v; want none trusted", c.TrustedProxies, err)
	}
	// IPv4-mapped forms are unmapped, as peers are (security review: they never matched).
	c, err = LoadLookup(lookup(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_TRUSTED_PROXIES": "::ffff:10.89.64.10/128, ::ffff:10.0.0.0/104"}), nil)
	if err != nil || len(c.TrustedProxies) != 2 || c.TrustedProxies[0].String() != "10.89.64.10/32" || c.TrustedProxies[1].String() != "10.0.0.0/8" {
		t.Errorf("IPv4-mapped prefixes: %v, %v; want 10.89.64.10/32 and 10.0.0.0/8", c.TrustedProxies, err)
	}
	for _, v := range []string{"10.0.0.0/33", "localhost", "fe80::1%eth0", "1.2.3", "::ffff:0:0/95"} {
		_, err := Load(env(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_TRUSTED_PROXIES": v}), nil)
		if err == nil || !strings.Contains(err.Error(), "SWR_TRUSTED_PROXIES") {
			t.Errorf("SWR_TRUSTED_PROXIES=%q: %v, want an error naming the setting", v, err)
		}
	}
}

func TestRedisForms(t *testing.T) {
	tests := []struct {
		in    string
		addrs []string
	}{
		{"", nil},
		{"redis://redis:6379/0", nil},
		{"redis://redis", nil},
		{"redis://redis:6379/", nil},
		{"rediss://user:pw@redis:6380/15", nil},
		{"redis://redis:6379/0?dial_timeout=3s", nil},
		{"REDIS://redis:6379/0", nil},
		{"a:7000", []string{"a:7000"}},
		{"a:7000,b:7001, c:7002 ", []string{"a:7000", "b:7001", "c:7002"}},
		{"[::1]:7000,10.0.0.1:7001", []string{"[::1]:7000", "10.0.0.1:7001"}},
	}
	for _, tt := range tests {
		c, err := LoadLookup(lookup(map[string]string{"SWR_UPSTREAM": "http://o", "SWR_REDIS_URL": tt.in}), nil)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if c.RedisURL != strings.TrimSpace(tt.in) {
			t.Errorf("%q: RedisURL = %q, want it kept as given", tt.in, c.RedisURL)
		}
		if got := c.RedisAddrs(); !slices.Equal(got, tt.addrs) || (got == nil) != (tt.addrs == nil) {
			t.Errorf("%q: RedisAddrs = %q, want %q", tt.in, got, tt.addrs)
		}
	}
}

func TestAdminListenMustDifferFromListen(t *testing.T) {
	tests := []struct {
		listen, admin string
		ok            bool
	}{
		{":8000", "", true},
		{":8000", ":8001", true},
		{":8000", ":8000", false},
		{":8000", "0.0.0.0:8000", false},
		{"127.0.0.1:8000", ":8000", false},
		{"127.0.0.1:8000", "127.0.0.2:8000", true},
		{"127.0.0.1:0", "127.0.0.1:0", true}, // two free ports
		{"[::1]:9000", "[::1]:9000", false},
	}
	for _, tt := range tests {
		m := map[string]string{"SWR_UPSTREAM": "http://o", "SWR_LISTEN": tt.listen, "SWR_ADMIN_LISTEN": tt.admin}
		_, err := Load(env(m), nil)
		if (err == nil) != tt.ok {
			t.Errorf("listen %q, admin %q: error %v, want ok=%v", tt.listen, tt.admin, err, tt.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "SWR_ADMIN_LISTEN") || !strings.Contains(err.Error(), "SWR_LISTEN=")) {
			t.Errorf("error %q must name both settings", err)
		}
	}
}

func TestUnknownFlagIsAnError(t *testing.T) {
	_, err := Load(env(map[string]string{"SWR_UPSTREAM": "http://o"}), []string{"--upstrem=http://o"})
	if err == nil || !strings.Contains(err.Error(), "unknown flag --upstrem") || errors.Is(err, ErrHelp) {
		t.Errorf("Load error = %v, want one naming the unknown flag", err)
	}
}

func TestFlagWithoutValueIsAnError(t *testing.T) {
	_, err := Load(env(map[string]string{"SWR_UPSTREAM": "http://o"}), []string{"--listen"})
	if err == nil || !strings.Contains(err.Error(), "--listen needs a value") {
		t.Errorf("Load error = %v, want one naming the flag", err)
	}
}

func TestPositionalArgumentIsAnError(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, `unexpected argument "serve"`},
		{[]string{"--key-host", "false"}, "--key-host=false"},
		{[]string{"--", "x"}, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		_, err := Load(env(map[string]string{"SWR_UPSTREAM": "http://o"}), tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%q) error = %v, want it to contain %q", tt.args, err, tt.want)
		}
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		_, err := Load(env(nil), []string{arg})
		if !errors.Is(err, ErrHelp) {
			t.Fatalf("Load(%s) error = %v, want ErrHelp", arg, err)
		}
		if err.Error() != Usage() {
			t.Errorf("Load(%s) error text is not the usage", arg)
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

func TestLogValueMasksTheSecretAndTheRedisPassword(t *testing.T) {
	m := maps(allSet, map[string]string{"SWR_INVALIDATE_SECRET": "s3cr3t-" + testSecret, "SWR_REDIS_URL": "redis://user:hunter2@redis:6379/0"})
	c := mustLoad(t, m)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("starting", "config", c)
	out := buf.String()
	for _, s := range []string{out, c.String(), fmt.Sprint(c), fmt.Sprintf("%v", c)} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "hunter2") {
			t.Errorf("output leaks a secret: %s", s)
		}
	}
	for _, want := range []string{
		"config.invalidate_secret=***",
		"config.redis_url=redis://user:xxxxx@redis:6379/0",
		"config.upstream=https://origin.example:8443/api/v1",
		"config.default_ttl=45s",
		"config.stale_while_revalidate=1m30s",
		"config.max_object_bytes=524288",
		"config.refresh_workers=1024",
		"config.log_level=debug",
		"config.key_host=true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %s:\n%s", want, out)
		}
	}
	if n := len(c.LogValue().Group()); n != len(Settings) {
		t.Errorf("LogValue has %d attributes, want one per setting (%d)", n, len(Settings))
	}

	c = mustLoad(t, map[string]string{"SWR_UPSTREAM": "http://o"})
	if got := attr(c, "invalidate_secret"); got != "" {
		t.Errorf("unset secret logs as %q, want empty", got)
	}
}

func attr(c Config, key string) string {
	for _, a := range c.LogValue().Group() {
		if a.Key == key {
			return a.Value.String()
		}
	}
	return "(missing)"
}

func maps(a, b map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

var durationTests = []struct {
	in   string
	want time.Duration
	ok   bool
}{
	{"0", 0, true},
	{"90", 90 * time.Second, true},
	{"1.5", 1500 * time.Millisecond, true},
	{".5", 500 * time.Millisecond, true},
	{"5.", 5 * time.Second, true},
	{"0.0000000019", 1, true}, // below a nanosecond is dropped
	{" 90s ", 90 * time.Second, true},
	{"5m", 5 * time.Minute, true},
	{"1h30m", 90 * time.Minute, true},
	{"+5s", 5 * time.Second, true},
	{"250ms", 250 * time.Millisecond, true},
	{"9223372036", 9223372036 * time.Second, true},
	{"9223372037", 0, false}, // overflow
	{"2562048h", 0, false},   // overflow
	{"99999999999999999999999999", 0, false},
	{"-1", 0, false},
	{"-5s", 0, false},
	{"", 0, false},
	{"ten", 0, false},
	{"1d", 0, false},
	{"1e3", 0, false},
	{"1.2.3", 0, false},
	{".", 0, false},
	{"5 s", 0, false},
	{"0x10", 0, false},
	{"NaN", 0, false},
	{"Inf", 0, false},
	{strings.Repeat("9", 100), 0, false},
}

func TestParseDuration(t *testing.T) {
	for _, tt := range durationTests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

var sizeTests = []struct {
	in   string
	want int64
	ok   bool
}{
	{"0", 0, true},
	{"1048576", 1 << 20, true},
	{"100B", 100, true},
	{"100 b", 100, true},
	{"512KiB", 512 << 10, true},
	{"512k", 512 << 10, true},
	{"512KB", 512 << 10, true},
	{"1.5MiB", 3 << 19, true},
	{"10 MiB", 10 << 20, true},
	{"8mib", 8 << 20, true},
	{"2M", 2 << 20, true},
	{"256MB", 256 << 20, true},
	{"1GiB", 1 << 30, true},
	{"1g", 1 << 30, true},
	{"0.5GB", 1 << 29, true},
	{"1.0000001KiB", 1024, true}, // rounded down to whole bytes
	{".5KiB", 512, true},
	{"0.000000000931322574615478515625GiB", 1, true}, // exactly 1 byte: exact arithmetic
	{"8589934591GiB", 8589934591 << 30, true},
	{"9223372036854775807", 1<<63 - 1, true},
	{"9223372036854775808", 0, false}, // overflow
	{"8589934592GiB", 0, false},       // overflow
	{"99999999999999999999999TB", 0, false},
	{"-1", 0, false},
	{"-1MiB", 0, false},
	{"1TB", 0, false},
	{"1TiB", 0, false},
	{"1.5", 0, false}, // a fraction of a byte
	{"1.5B", 0, false},
	{"", 0, false},
	{"MiB", 0, false},
	{"lots", 0, false},
	{"1 2", 0, false},
	{"1..5MiB", 0, false},
	{"1e6", 0, false},
	{"0x100", 0, false},
	{"1_000", 0, false},
	{strings.Repeat("1", 100), 0, false},
}

func TestParseSize(t *testing.T) {
	for _, tt := range sizeTests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseBool(t *testing.T) {
	tests := []struct {
		in       string
		want, ok bool
	}{
		{"1", true, true}, {"true", true, true}, {"TRUE", true, true}, {"Yes", true, true}, {" on ", true, true},
		{"0", false, true}, {"false", false, true}, {"no", false, true}, {"OFF", false, true},
		{"", false, false}, {"2", false, false}, {"t", false, false}, {"enabled", false, false},
	}
	for _, tt := range tests {
		got, err := ParseBool(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBool(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, tt := range durationTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, err := ParseDuration(in) // must not panic
		if err == nil && d < 0 {
			t.Errorf("ParseDuration(%q) = %v, want ≥ 0", in, d)
		}
		if err != nil && d != 0 {
			t.Errorf("ParseDuration(%q) = %v with error %v, want 0", in, d, err)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, tt := range sizeTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, err := ParseSize(in) // must not panic
		if err == nil && n < 0 {
			t.Errorf("ParseSize(%q) = %d, want ≥ 0", in, n)
		}
		if err != nil && n != 0 {
			t.Errorf("ParseSize(%q) = %d with error %v, want 0", in, n, err)
		}
	})
}

func TestLogLevelNamesAreCaseInsensitive(t *testing.T) {
	tests := map[string]slog.Level{"debug": slog.LevelDebug, "Info": slog.LevelInfo, "WARN": slog.LevelWarn, "error": slog.LevelError}
	for in, want := range tests {
		c := mustLoad(t, map[string]string{"SWR_UPSTREAM": "http://o"}, "--log-level", in)
		if c.LogLevel != want {
			t.Errorf("--log-level %s: LogLevel = %v, want %v", in, c.LogLevel, want)
		}
	}
}

func TestVersionFlagIsAnswerNotAnError(t *testing.T) {
	_, err := Load(env(map[string]string{}), []string{"--version"})
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("--version: %v, want ErrVersion (even without SWR_UPSTREAM)", err)
	}
	if !strings.Contains(Usage(), "--version") {
		t.Error("the usage does not list --version")
	}
}
