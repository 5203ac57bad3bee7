package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/upstream"
)

// The settings of the origin pool: SWR_UPSTREAM as a list, balancing, health checks, the origin
// budget, and TLS and Host towards the backends.

func TestUpstreamListsEveryBackendInOrderNormalised(t *testing.T) {
	c := mustLoad(t, map[string]string{"SWR_UPSTREAM": "http://b:8080, HTTPS://A:443/api/ ,http://[::1]:9000"})
	var got []string
	for _, u := range c.Upstreams {
		got = append(got, u.String())
	}
	want := []string{"http://b:8080", "https://a/api", "http://[::1]:9000"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Upstreams = %q, want %q", got, want)
	}
	if got, want := attr(c, "upstream"), "http://b:8080,https://a/api,http://[::1]:9000"; got != want {
		t.Errorf("log value upstream = %q, want %q (every backend)", got, want)
	}
}

func TestUpstreamAcceptsAtMost64Backends(t *testing.T) {
	list := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf("http://origin-%d:8080", i)
		}
		return strings.Join(items, ",")
	}
	if c := mustLoad(t, map[string]string{"SWR_UPSTREAM": list(64)}); len(c.Upstreams) != 64 {
		t.Errorf("64 backends: Upstreams has %d", len(c.Upstreams))
	}
	_, err := load(env(map[string]string{"SWR_UPSTREAM": list(65)}), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "config: SWR_UPSTREAM=") || !strings.Contains(err.Error(), "lists 65 items, at most 64 backends") {
		t.Errorf("65 backends: error %v, want one naming SWR_UPSTREAM and the limit", err)
	}
}

func TestUpstreamFromTheFlagReplacesTheWholeList(t *testing.T) {
	c := mustLoad(t, map[string]string{"SWR_UPSTREAM": "http://a,http://b"}, "--upstream=http://c,http://d")
	if len(c.Upstreams) != 2 || c.Upstreams[0].Host != "c" || c.Upstreams[1].Host != "d" {
		t.Errorf("Upstreams = %v, want the flag's [http://c http://d]", c.Upstreams)
	}
}

// poolSettings: for each new setting, its default, a good value from the environment and a
// different one from the flag, which wins.
var poolSettings = []struct {
	env, flag string
	field     func(Config) any
	def       any
	envValue  string
	envWant   any
	flagValue string
	flagWant  any
}{
	{"SWR_UPSTREAM_BALANCE", "upstream-balance", func(c Config) any { return c.UpstreamBalance },
		upstream.BalanceRoundRobin, "least_conn", upstream.BalanceLeastConn, "KEY_HASH", upstream.BalanceKeyHash},
	{"SWR_HEALTH_INTERVAL", "health-interval", func(c Config) any { return c.HealthInterval },
		30 * time.Second, "1m", time.Minute, "2", 2 * time.Second},
	{"SWR_HEALTH_PATH", "health-path", func(c Config) any { return c.HealthPath },
		"/", "/healthz", "/healthz", "/status%2Fdeep?full=1", "/status%2Fdeep?full=1"},
	{"SWR_HEALTH_TIMEOUT", "health-timeout", func(c Config) any { return c.HealthTimeout },
		5 * time.Second, "1s", time.Second, "200ms", 200 * time.Millisecond},
	{"SWR_HEALTH_FALL", "health-fall", func(c Config) any { return c.HealthFall },
		3, "5", 5, "100", 100},
	{"SWR_HEALTH_RISE", "health-rise", func(c Config) any { return c.HealthRise },
		2, "1", 1, "7", 7},
	{"SWR_ORIGIN_MAX_CONCURRENCY", "origin-max-concurrency", func(c Config) any { return c.OriginMaxConcurrency },
		0, "64", 64, "0", 0},
	{"SWR_ORIGIN_FLEET_MAX_CONCURRENCY", "origin-fleet-max-concurrency", func(c Config) any { return c.OriginFleetMaxConcurrency },
		0, "500", 500, "1000000", 1000000},
	{"SWR_ORIGIN_MAX_WAIT", "origin-max-wait", func(c Config) any { return c.OriginMaxWait },
		5 * time.Second, "1.5", 1500 * time.Millisecond, "100ms", 100 * time.Millisecond},
	{"SWR_UPSTREAM_CA_FILE", "upstream-ca-file", func(c Config) any { return c.UpstreamCAFile },
		"", "/etc/ssl/origin-ca.pem", "/etc/ssl/origin-ca.pem", "ca bundle.pem", "ca bundle.pem"},
	{"SWR_UPSTREAM_SERVER_NAME", "upstream-server-name", func(c Config) any { return c.UpstreamServerName },
		"", "origin.internal", "origin.internal", "10.0.0.7", "10.0.0.7"},
	{"SWR_UPSTREAM_INSECURE_SKIP_VERIFY", "upstream-insecure-skip-verify", func(c Config) any { return c.UpstreamInsecureSkipVerify },
		false, "true", true, "false", false},
	{"SWR_UPSTREAM_HOST", "upstream-host", func(c Config) any { return c.UpstreamHost },
		"", "www.example.com", "www.example.com", "[2001:db8::1]:8443", "[2001:db8::1]:8443"},
}

func TestPoolSettingsHaveDefaultsAndFlagsOverrideTheEnvironment(t *testing.T) {
	for _, tt := range poolSettings {
		t.Run(tt.env, func(t *testing.T) {
			base := map[string]string{"SWR_UPSTREAM": "http://origin"}
			if got := tt.field(mustLoad(t, base)); got != tt.def {
				t.Errorf("default = %v, want %v", got, tt.def)
			}
			m := maps(base, map[string]string{tt.env: tt.envValue})
			if got := tt.field(mustLoad(t, m)); got != tt.envWant {
				t.Errorf("%s=%q: %v, want %v", tt.env, tt.envValue, got, tt.envWant)
			}
			if got := tt.field(mustLoad(t, m, "--"+tt.flag+"="+tt.flagValue)); got != tt.flagWant {
				t.Errorf("%s=%q --%s=%q: %v, want the flag's %v", tt.env, tt.envValue, tt.flag, tt.flagValue, got, tt.flagWant)
			}
		})
	}
}

func TestClientCertificateAndKeyAreSetTogether(t *testing.T) {
	tests := []struct {
		cert, key string
		args      []string
		ok        bool
	}{
		{"", "", nil, true},
		{"/tls/client.pem", "/tls/client-key.pem", nil, true},
		{"/tls/client.pem", "", []string{"--upstream-client-key=/tls/client-key.pem"}, true},
		{"/tls/client.pem", "", nil, false},
		{"", "/tls/client-key.pem", nil, false},
		{"/tls/client.pem", "/tls/client-key.pem", []string{"--upstream-client-key="}, false},
	}
	for _, tt := range tests {
		m := map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_UPSTREAM_CLIENT_CERT": tt.cert, "SWR_UPSTREAM_CLIENT_KEY": tt.key}
		c, err := LoadLookup(lookup(m), tt.args)
		if (err == nil) != tt.ok {
			t.Errorf("cert %q, key %q, %q: error %v, want ok=%v", tt.cert, tt.key, tt.args, err, tt.ok)
			continue
		}
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "config: SWR_UPSTREAM_CLIENT_CERT=") || !strings.Contains(msg, "SWR_UPSTREAM_CLIENT_KEY=") ||
				!strings.Contains(msg, "together") || (tt.cert != "" && !strings.Contains(msg, tt.cert)) || (tt.key != "" && tt.args == nil && !strings.Contains(msg, tt.key)) {
				t.Errorf("error %q must name both settings and their values", msg)
			}
			continue
		}
		if tt.args == nil && (c.UpstreamClientCert != tt.cert || c.UpstreamClientKey != tt.key) {
			t.Errorf("cert, key = %q, %q; want %q, %q", c.UpstreamClientCert, c.UpstreamClientKey, tt.cert, tt.key)
		}
	}
}
