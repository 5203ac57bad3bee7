package config

import (
	"log/slog"
	"net/netip"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redisconn"
)

// env returns a getenv over m, as os.Getenv.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// load is LoadLookup over getenv, an empty value counting as unset (so that a test's map need
// not tell the two apart).
func load(getenv func(string) string, args []string) (Config, error) {
	return LoadLookup(func(key string) (string, bool) {
		v := getenv(key)
		return v, v != ""
	}, args)
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
	c, err := load(env(m), args)
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
		Upstreams:            []*url.URL{mustURL(t, "http://origin:8080")},
		RedisURL:             "redis://127.0.0.1:6379/0",
		L1MaxBytes:           256 << 20,
		L1MaxTTL:             30 * time.Second,
		DefaultTTL:           0,
		StaleWhileRevalidate: 60 * time.Second,
		StaleIfError:         time.Hour,
		RefreshWindow:        5 * time.Minute,
		RefreshWorkers:       8,
		MaxObjectBytes:       8 << 20,
		Compress:             []string{"br", "gzip"},
		CompressMinBytes:     256,
		UpstreamTimeout:      30 * time.Second,
		TrustedProxies:       []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		LogLevel:             slog.LevelInfo,
		LogFormat:            "text",

		UpstreamBalance:      "round_robin",
		HealthInterval:       30 * time.Second,
		HealthPath:           "/",
		HealthTimeout:        5 * time.Second,
		HealthFall:           3,
		HealthRise:           2,
		OriginMaxConcurrency: 0,
		OriginMaxWait:        5 * time.Second,
		PolicyTimeout:        5 * time.Millisecond,
		WarmBytes:            64 << 20,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
	}
	if r := got.Redis(); r.Kind != redisconn.Single || r.Addrs[0] != "127.0.0.1:6379" {
		t.Errorf("Redis() = %v, want the single server on 127.0.0.1:6379", r)
	}
}

// allSet sets every setting to a value other than its default.
var allSet = map[string]string{
	"SWR_LISTEN":                  "127.0.0.1:9000",
	"SWR_UPSTREAM":                "https://origin.example:8443/api/v1/, http://Origin-2:80",
	"SWR_REDIS_URL":               "rediss://:pw@redis:6380/2",
	"SWR_REDIS_MASTER_NAME":       "primary",
	"SWR_REDIS_SENTINEL_PASSWORD": "sentinel pass",
	"SWR_REDIS_CA_FILE":           "/etc/swrproxy/redis-ca.pem",
	"SWR_L1_MAX_BYTES":            "1.5GiB",
	"SWR_L1_MAX_TTL":              "10",
	"SWR_DEFAULT_TTL":             "45s",
	"SWR_STALE_WHILE_REVALIDATE":  "1m30s",
	"SWR_STALE_IF_ERROR":          "2h",
	"SWR_REFRESH_WINDOW":          "0",
	"SWR_REFRESH_WORKERS":         "1024",
	"SWR_MAX_OBJECT_BYTES":        "512 KiB",
	"SWR_COMPRESS":                " GZIP , br",
	"SWR_COMPRESS_MIN_BYTES":      "1KiB",
	"SWR_UPSTREAM_TIMEOUT":        "2.5",
	"SWR_INVALIDATE_SECRET":       testSecret,
	"SWR_ADMIN_LISTEN":            "127.0.0.1:9001",
	"SWR_KEY_HOST":                "yes",
	"SWR_TRUSTED_PROXIES":         "10.0.0.0/8, 192.168.1.7,::ffff:172.16.0.1",
	"SWR_LOG_LEVEL":               "DEBUG",
	"SWR_LOG_FORMAT":              "JSON",
	"SWR_ACCESS_LOG":              "on",

	"SWR_UPSTREAM_BALANCE":              "Key_Hash",
	"SWR_HEALTH_INTERVAL":               "10",
	"SWR_HEALTH_PATH":                   "/healthz?deep=1",
	"SWR_HEALTH_TIMEOUT":                "750ms",
	"SWR_HEALTH_FALL":                   "1",
	"SWR_HEALTH_RISE":                   "100",
	"SWR_ORIGIN_MAX_CONCURRENCY":        "100000",
	"SWR_ORIGIN_FLEET_MAX_CONCURRENCY":  "1000000",
	"SWR_ORIGIN_MAX_WAIT":               "250ms",
	"SWR_UPSTREAM_CA_FILE":              "/etc/swrproxy/ca.pem",
	"SWR_UPSTREAM_CLIENT_CERT":          "/etc/swrproxy/client.pem",
	"SWR_UPSTREAM_CLIENT_KEY":           "/etc/swrproxy/client-key.pem",
	"SWR_UPSTREAM_SERVER_NAME":          "origin.internal",
	"SWR_UPSTREAM_INSECURE_SKIP_VERIFY": "true",
	"SWR_UPSTREAM_HOST":                 "www.example.com",
	"SWR_POLICY_FILE":                   "/etc/swrproxy/policy.yaml",
	"SWR_POLICY_WASM":                   "/etc/swrproxy/policy.wasm",
	"SWR_POLICY_POOL":                   "16",
	"SWR_POLICY_TIMEOUT":                "20ms",
	"SWR_ADMIN_PASSWORD":                "correct horse battery",
	"SWR_WARM_BYTES":                    "16MiB",
}

func TestEverySettingIsReadFromTheEnvironment(t *testing.T) {
	if len(allSet) != len(Settings) {
		t.Fatalf("the test sets %d settings, Settings has %d", len(allSet), len(Settings))
	}
	got := mustLoad(t, allSet)
	want := Config{
		Listen:                "127.0.0.1:9000",
		Upstreams:             []*url.URL{mustURL(t, "https://origin.example:8443/api/v1"), mustURL(t, "http://origin-2")},
		RedisURL:              "rediss://:pw@redis:6380/2",
		RedisMasterName:       "primary",
		RedisSentinelPassword: "sentinel pass",
		RedisCAFile:           "/etc/swrproxy/redis-ca.pem",
		L1MaxBytes:            3 << 29,
		L1MaxTTL:              10 * time.Second,
		DefaultTTL:            45 * time.Second,
		StaleWhileRevalidate:  90 * time.Second,
		StaleIfError:          2 * time.Hour,
		RefreshWindow:         0,
		RefreshWorkers:        1024,
		MaxObjectBytes:        512 << 10,
		Compress:              []string{"gzip", "br"},
		CompressMinBytes:      1 << 10,
		UpstreamTimeout:       2500 * time.Millisecond,
		InvalidateSecret:      testSecret,
		AdminListen:           "127.0.0.1:9001",
		KeyHost:               true,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
			netip.MustParsePrefix("172.16.0.1/32")},
		LogLevel:  slog.LevelDebug,
		LogFormat: "json",
		AccessLog: true,

		UpstreamBalance:            "key_hash",
		HealthInterval:             10 * time.Second,
		HealthPath:                 "/healthz?deep=1",
		HealthTimeout:              750 * time.Millisecond,
		HealthFall:                 1,
		HealthRise:                 100,
		OriginMaxConcurrency:       100000,
		OriginFleetMaxConcurrency:  1000000,
		OriginMaxWait:              250 * time.Millisecond,
		UpstreamCAFile:             "/etc/swrproxy/ca.pem",
		UpstreamClientCert:         "/etc/swrproxy/client.pem",
		UpstreamClientKey:          "/etc/swrproxy/client-key.pem",
		UpstreamServerName:         "origin.internal",
		UpstreamInsecureSkipVerify: true,
		UpstreamHost:               "www.example.com",
		PolicyFile:                 "/etc/swrproxy/policy.yaml",
		PolicyWasm:                 "/etc/swrproxy/policy.wasm",
		PolicyPool:                 16,
		PolicyTimeout:              20 * time.Millisecond,
		AdminPassword:              "correct horse battery",
		WarmBytes:                  16 << 20,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
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
	if c.RedisURL != "" || c.Redis().Kind != redisconn.None {
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
	if len(c.Upstreams) != 1 || c.Upstreams[0].String() != "http://origin" || c.LogLevel != slog.LevelWarn {
		t.Errorf("Upstreams, LogLevel = %v, %v", c.Upstreams, c.LogLevel)
	}
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
