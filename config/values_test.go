package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/swrproxy/swrproxy/internal/redisconn"
)

func TestUpstreamPathBecomesAPrefix(t *testing.T) {
	tests := []struct{ in, url, path string }{
		{"http://origin", "http://origin", ""},
		{"http://origin/", "http://origin", ""},
		{"HTTPS://Origin:8443//", "https://origin:8443", ""},   // host lower-cased
		{"http://origin:80/api/", "http://origin/api", "/api"}, // the default port dropped
		{"https://origin:443", "https://origin", ""},
		{"http://origin/a%2Fb/", "http://origin/a%2Fb", "/a/b"},
		{"http://[::1]:8080/x", "http://[::1]:8080/x", "/x"},
	}
	for _, tt := range tests {
		c := mustLoad(t, map[string]string{"SWR_UPSTREAM": tt.in})
		if len(c.Upstreams) != 1 {
			t.Fatalf("%s: Upstreams = %v, want one", tt.in, c.Upstreams)
		}
		if got := c.Upstreams[0].String(); got != tt.url {
			t.Errorf("%s: Upstreams[0] = %q, want %q", tt.in, got, tt.url)
		}
		if c.Upstreams[0].Path != tt.path {
			t.Errorf("%s: Upstreams[0].Path = %q, want %q", tt.in, c.Upstreams[0].Path, tt.path)
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
		_, err := load(env(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_TRUSTED_PROXIES": v}), nil)
		if err == nil || !strings.Contains(err.Error(), "SWR_TRUSTED_PROXIES") {
			t.Errorf("SWR_TRUSTED_PROXIES=%q: %v, want an error naming the setting", v, err)
		}
	}
}

// The SWR_REDIS_URL forms (redisconn.Parse has the details) and what they name, with
// SWR_REDIS_MASTER_NAME turning the addresses into sentinels.
func TestRedisForms(t *testing.T) {
	tests := []struct {
		in, master string
		kind       redisconn.Kind
		addrs      []string
	}{
		{"", "", redisconn.None, nil},
		{"redis://redis:6379/0", "", redisconn.Single, []string{"redis:6379"}},
		{"redis://redis", "", redisconn.Single, []string{"redis:6379"}},
		{"redis://redis:6379/", "", redisconn.Single, []string{"redis:6379"}},
		{"rediss://user:pw@redis:6380/15", "", redisconn.Single, []string{"redis:6380"}},
		{"REDIS://redis:6379/0", "", redisconn.Single, []string{"redis:6379"}},
		{"a:7000", "", redisconn.Single, []string{"a:7000"}},
		{"a:7000,b:7001, c:7002 ", "", redisconn.Cluster, []string{"a:7000", "b:7001", "c:7002"}},
		{"[::1]:7000,10.0.0.1:7001", "", redisconn.Cluster, []string{"[::1]:7000", "10.0.0.1:7001"}},
		{"redis://u:p@h1:6379?addr=h2:6379&addr=h3:6379", "", redisconn.Cluster, []string{"h1:6379", "h2:6379", "h3:6379"}},
		{"rediss://h1?addr=h2:6380", "", redisconn.Cluster, []string{"h1:6379", "h2:6380"}},
		{"s1:26379,s2:26379", "mymaster", redisconn.Sentinel, []string{"s1:26379", "s2:26379"}},
		{"redis://u:p@s1?addr=s2:26380", "mymaster", redisconn.Sentinel, []string{"s1:26379", "s2:26380"}},
		{"redis://u:p@s1/2?addr=s2", "mymaster", redisconn.Sentinel, []string{"s1:26379", "s2:26379"}}, // a primary's database 2
	}
	for _, tt := range tests {
		c, err := LoadLookup(lookup(map[string]string{"SWR_UPSTREAM": "http://o", "SWR_REDIS_URL": tt.in, "SWR_REDIS_MASTER_NAME": tt.master}), nil)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if c.RedisURL != strings.TrimSpace(tt.in) {
			t.Errorf("%q: RedisURL = %q, want it kept as given", tt.in, c.RedisURL)
		}
		if r := c.Redis(); r.Kind != tt.kind || !slices.Equal(r.Addrs, tt.addrs) || r.MasterName != tt.master {
			t.Errorf("%q (master %q): %v %q, want %v %q", tt.in, tt.master, r.Kind, r.Addrs, tt.kind, tt.addrs)
		}
	}
	// A sentinel password without a master name stops start-up, naming both, without the value.
	_, err := LoadLookup(lookup(map[string]string{"SWR_UPSTREAM": "http://o", "SWR_REDIS_URL": "h:6379", "SWR_REDIS_SENTINEL_PASSWORD": "pw-Xq9"}), nil)
	if err == nil || !strings.Contains(err.Error(), "SWR_REDIS_SENTINEL_PASSWORD") || !strings.Contains(err.Error(), "SWR_REDIS_MASTER_NAME") || strings.Contains(err.Error(), "pw-Xq9") {
		t.Errorf("a sentinel password without a master name: %v", err)
	}
	c, err := LoadLookup(lookup(map[string]string{"SWR_UPSTREAM": "http://o", "SWR_REDIS_URL": "s1:26379", "SWR_REDIS_MASTER_NAME": "m", "SWR_REDIS_SENTINEL_PASSWORD": "pw-Xq9"}), nil)
	if err != nil || c.Redis().SentinelPassword != "pw-Xq9" {
		t.Errorf("Redis().SentinelPassword = %q, %v; want the setting's", c.Redis().SentinelPassword, err)
	}
	// A master name without sentinels stops start-up, naming both settings.
	_, err = LoadLookup(lookup(map[string]string{"SWR_UPSTREAM": "http://o", "SWR_REDIS_URL": "", "SWR_REDIS_MASTER_NAME": "m"}), nil)
	if err == nil || !strings.Contains(err.Error(), "SWR_REDIS_MASTER_NAME") || !strings.Contains(err.Error(), "SWR_REDIS_URL") {
		t.Errorf("a master name without SWR_REDIS_URL: %v, want an error naming both", err)
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
		_, err := load(env(m), nil)
		if (err == nil) != tt.ok {
			t.Errorf("listen %q, admin %q: error %v, want ok=%v", tt.listen, tt.admin, err, tt.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), "SWR_ADMIN_LISTEN") || !strings.Contains(err.Error(), "SWR_LISTEN=")) {
			t.Errorf("error %q must name both settings", err)
		}
	}
}
