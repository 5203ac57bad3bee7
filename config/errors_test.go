package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestBadValueErrorNamesTheVariableAndTheValue(t *testing.T) {
	for _, tt := range badValues {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			m := map[string]string{"SWR_UPSTREAM": "http://origin", tt.env: tt.value}
			_, err := load(env(m), nil)
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
	_, err := load(env(map[string]string{"SWR_UPSTREAM": "http://origin"}), []string{"--default-ttl=ten"})
	want := `config: SWR_DEFAULT_TTL="ten" (from --default-ttl): not a duration (use Go syntax like 90s or 5m, or a number of seconds)`
	if err == nil || err.Error() != want {
		t.Errorf("Load error = %v, want %s", err, want)
	}
}

func TestEnvironmentErrorMatchesTheContract(t *testing.T) {
	_, err := load(env(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_DEFAULT_TTL": "ten"}), nil)
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
	_, err := load(env(m), []string{"--listen", "nowhere"})
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
	want := "config: SWR_UPSTREAM is required (the origin base URL, e.g. http://origin:8080, or up to 64 of them comma-separated for a pool)"
	for _, args := range [][]string{nil, {"--upstream="}} {
		_, err := load(env(nil), args)
		if err == nil || err.Error() != want {
			t.Errorf("load(%q) error = %v, want %s", args, err, want)
		}
	}
}

func TestUnknownFlagIsAnError(t *testing.T) {
	_, err := load(env(map[string]string{"SWR_UPSTREAM": "http://o"}), []string{"--upstrem=http://o"})
	if err == nil || !strings.Contains(err.Error(), "unknown flag --upstrem") || errors.Is(err, ErrHelp) {
		t.Errorf("Load error = %v, want one naming the unknown flag", err)
	}
}

func TestFlagWithoutValueIsAnError(t *testing.T) {
	_, err := load(env(map[string]string{"SWR_UPSTREAM": "http://o"}), []string{"--listen"})
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
		_, err := load(env(map[string]string{"SWR_UPSTREAM": "http://o"}), tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("load(%q) error = %v, want it to contain %q", tt.args, err, tt.want)
		}
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
	{"SWR_REDIS_URL", "redis://a:6379?addr=b:x", "port"},
	{"SWR_REDIS_CA_FILE", "/etc/redis-ca.pem", "not rediss://"},
	{"SWR_REDIS_URL", "redis://a:6379?dial_timeout", "unknown query parameter"},
	{"SWR_REDIS_URL", "redis://a:6379/1?addr=b:6379", "only database 0"},
	{"SWR_REDIS_MASTER_NAME", "my master", "white space"},
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
	{"SWR_COMPRESS", "deflate", `unknown coding "deflate": must be br, gzip, a list of them, or off`},
	{"SWR_COMPRESS", "br,,gzip", `unknown coding ""`},
	{"SWR_COMPRESS", "gzip,GZIP", `coding "gzip" listed twice`},
	{"SWR_COMPRESS_MIN_BYTES", "2MiB", "at most 1MiB"},
	{"SWR_COMPRESS_MIN_BYTES", "-1", "negative"},
	{"SWR_UPSTREAM_TIMEOUT", "0", "more than 0"},
	{"SWR_ADMIN_LISTEN", "admin", "host:port"},
	{"SWR_KEY_HOST", "maybe", "boolean"},
	{"SWR_LOG_LEVEL", "verbose", "debug, info, warn or error"},
	{"SWR_LOG_FORMAT", "xml", "text or json"},
	{"SWR_ACCESS_LOG", "2", "boolean"},
	{"SWR_UPSTREAM", "http://a,", "item 2 is empty"},
	{"SWR_UPSTREAM", ",http://a", "item 1 is empty"},
	{"SWR_UPSTREAM", "http://a,,http://b", "item 2 is empty"},
	{"SWR_UPSTREAM", "http://a, ftp://b", `item 2 "ftp://b": the scheme must be http or https`},
	{"SWR_UPSTREAM", "http://a,http://A:80/", "items 1 and 2 are the same backend http://a"},
	{"SWR_UPSTREAM_BALANCE", "random", "round_robin, least_conn or key_hash"},
	{"SWR_UPSTREAM_BALANCE", "round-robin", "round_robin, least_conn or key_hash"},
	{"SWR_HEALTH_INTERVAL", "0", "more than 0"},
	{"SWR_HEALTH_INTERVAL", "often", "duration"},
	{"SWR_HEALTH_PATH", "healthz", "must start with /"},
	{"SWR_HEALTH_PATH", "*", "must start with /"},
	{"SWR_HEALTH_PATH", "/a b", "white space"},
	{"SWR_HEALTH_PATH", "/a#b", "#"},
	{"SWR_HEALTH_PATH", "/100%", "hex digits"},
	{"SWR_HEALTH_TIMEOUT", "0s", "more than 0"},
	{"SWR_HEALTH_TIMEOUT", "-1s", "negative"},
	{"SWR_HEALTH_FALL", "0", "1 to 100"},
	{"SWR_HEALTH_FALL", "101", "1 to 100"},
	{"SWR_HEALTH_RISE", "0", "1 to 100"},
	{"SWR_HEALTH_RISE", "two", "1 to 100"},
	{"SWR_ORIGIN_MAX_CONCURRENCY", "-1", "0 to 100000"},
	{"SWR_ORIGIN_MAX_CONCURRENCY", "100001", "0 to 100000"},
	{"SWR_ORIGIN_FLEET_MAX_CONCURRENCY", "1000001", "0 to 1000000"},
	{"SWR_ORIGIN_FLEET_MAX_CONCURRENCY", "lots", "0 to 1000000"},
	{"SWR_ORIGIN_MAX_WAIT", "0", "more than 0"},
	{"SWR_ORIGIN_MAX_WAIT", "forever", "duration"},
	{"SWR_POLICY_FILE", "rules\x00.yaml", "control characters"},
	{"SWR_POLICY_WASM", "policy\n.wasm", "control characters"},
	{"SWR_POLICY_POOL", "1025", "0 to 1024"},
	{"SWR_POLICY_POOL", "-1", "0 to 1024"},
	{"SWR_POLICY_TIMEOUT", "0", "more than 0"},
	{"SWR_POLICY_TIMEOUT", "soon", "duration"},
	{"SWR_WARM_BYTES", "lots", "size"},
	{"SWR_UPSTREAM_CA_FILE", "/etc/ca\x00.pem", "control characters"},
	{"SWR_UPSTREAM_CLIENT_CERT", "client\x1b[0m.pem", "control characters"},
	{"SWR_UPSTREAM_CLIENT_KEY", "key\x7f.pem", "control characters"},
	{"SWR_UPSTREAM_SERVER_NAME", "origin.internal:443", "without scheme or port"},
	{"SWR_UPSTREAM_SERVER_NAME", "https://origin.internal", "without scheme or port"},
	{"SWR_UPSTREAM_SERVER_NAME", "[::1]", "without scheme or port"},
	{"SWR_UPSTREAM_INSECURE_SKIP_VERIFY", "sure", "boolean"},
	{"SWR_UPSTREAM_HOST", "www.example.com/", "Host field"},
	{"SWR_UPSTREAM_HOST", "user@www.example.com", "Host field"},
	{"SWR_UPSTREAM_HOST", "www.example.com:99999", "Host field"},
}

func TestABadAdminPasswordStopsStartUpWithoutShowingIt(t *testing.T) {
	for _, v := range []string{"short", "long enough\x01but"} {
		_, err := load(env(map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_ADMIN_PASSWORD": v}), nil)
		if err == nil || !strings.Contains(err.Error(), "SWR_ADMIN_PASSWORD (value hidden)") || strings.Contains(err.Error(), v) {
			t.Errorf("SWR_ADMIN_PASSWORD=%q: %v", v, err)
		}
	}
}
