package config

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/swrproxy/swrproxy/upstream"
)

// Settings: the one list of settings, in the order of the README's "Configuration" table, and
// how each binds to its Config field.

// Setting describes one setting. Settings lists them all; treat it as read-only.
type Setting struct {
	Env      string // environment variable, e.g. "SWR_LISTEN"
	Flag     string // command-line flag without dashes, e.g. "listen"
	Default  string // the value used when neither the environment nor a flag sets it
	Help     string // what it means, one line
	Required bool   // no default: LoadLookup fails when it is not set

	arg     string // placeholder for the value in the usage text
	emptyOK bool   // an explicitly empty value means "off" instead of "use the default"
	secret  bool   // never echo the value, not even in an error
	creds   bool   // a URL that may carry a password: mask it in errors
	bind    binding
}

// binding connects a Setting to its Config field.
type binding struct {
	set    func(c *Config, v string) error // parses and validates v into c; the error does not repeat v
	value  func(c Config) slog.Value       // the field for the start-up log line, secrets masked
	isBool bool
}

// Settings lists every setting in the order of the README's "Configuration" table. LoadLookup reads each from its environment variable
// and its flag; README and usage texts can list them from here.
var Settings = []Setting{
	{Env: "SWR_LISTEN", Flag: "listen", Default: ":8000", arg: "ADDR",
		Help: "address of the proxy listener",
		bind: addrVar(func(c *Config) *string { return &c.Listen })},
	{Env: "SWR_UPSTREAM", Flag: "upstream", Required: true, arg: "URLS", creds: true,
		Help: "the origin base URL, e.g. http://origin:8080, or up to 64 of them comma-separated for a pool",
		bind: binding{set: setUpstreams, value: func(c Config) slog.Value {
			parts := make([]string, len(c.Upstreams))
			for i, u := range c.Upstreams {
				parts[i] = u.Redacted()
			}
			return slog.StringValue(strings.Join(parts, ","))
		}}},
	{Env: "SWR_REDIS_URL", Flag: "redis-url", Default: "redis://127.0.0.1:6379/0", arg: "URL", emptyOK: true, creds: true,
		Help: "L2: a redis:// or rediss:// (TLS) URL; for a Redis Cluster its seeds, as h1:6379,h2:6379 or redis[s]://[user:pass@]h1:6379?addr=h2:6379 (one endpoint: ?cluster=true); the sentinels with SWR_REDIS_MASTER_NAME; empty = L1 only",
		bind: binding{set: setRedis, value: func(c Config) slog.Value { return slog.StringValue(redactRedis(c.RedisURL)) }}},
	{Env: "SWR_REDIS_MASTER_NAME", Flag: "redis-master-name", arg: "NAME", emptyOK: true,
		Help: "Sentinel: the monitored master's name; SWR_REDIS_URL then lists the sentinels (a URL's ports default to 26379); credentials in the URL are the data nodes', the sentinels are asked without",
		bind: binding{set: func(c *Config, v string) error {
			if strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
				return errors.New("must not contain white space or control characters")
			}
			c.RedisMasterName = v
			return nil
		}, value: func(c Config) slog.Value { return slog.StringValue(c.RedisMasterName) }}},
	{Env: "SWR_REDIS_SENTINEL_PASSWORD", Flag: "redis-sentinel-password", arg: "PASSWORD", emptyOK: true, secret: true,
		Help: "Sentinel: the password the sentinels require (their requirepass); empty = sentinels without one",
		bind: secretVar(func(c *Config, v string) error {
			if strings.IndexFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 {
				return errors.New("must not contain control characters")
			}
			c.RedisSentinelPassword = v
			return nil
		}, func(c Config) string { return c.RedisSentinelPassword })},
	{Env: "SWR_REDIS_CA_FILE", Flag: "redis-ca-file", arg: "FILE", emptyOK: true,
		Help: "PEM bundle of CA certificates trusted for rediss:// besides the system roots; empty = the system roots only",
		bind: pathVar(func(c *Config) *string { return &c.RedisCAFile })},
	{Env: "SWR_L1_MAX_BYTES", Flag: "l1-max-bytes", Default: "256MiB", arg: "SIZE",
		Help: "L1 capacity, weighed by entry size",
		bind: sizeVar(func(c *Config) *int64 { return &c.L1MaxBytes }, 0)},
	{Env: "SWR_L1_MAX_TTL", Flag: "l1-max-ttl", Default: "30s", arg: "DURATION",
		Help: "how long an instance trusts its L1 copy without L2 (bounds incoherence if a message is lost)",
		bind: durationVar(func(c *Config) *time.Duration { return &c.L1MaxTTL }, true)},
	{Env: "SWR_DEFAULT_TTL", Flag: "default-ttl", Default: "0", arg: "DURATION",
		Help: "fixed freshness when the origin gives none and no Last-Modified heuristic applies; 0 = off; never for requests with Cookie or Authorization",
		bind: durationVar(func(c *Config) *time.Duration { return &c.DefaultTTL }, false)},
	{Env: "SWR_STALE_WHILE_REVALIDATE", Flag: "stale-while-revalidate", Default: "60s", arg: "DURATION",
		Help: "default stale-while-revalidate window",
		bind: durationVar(func(c *Config) *time.Duration { return &c.StaleWhileRevalidate }, false)},
	{Env: "SWR_STALE_IF_ERROR", Flag: "stale-if-error", Default: "1h", arg: "DURATION",
		Help: "default stale-if-error window",
		bind: durationVar(func(c *Config) *time.Duration { return &c.StaleIfError }, false)},
	{Env: "SWR_REFRESH_WINDOW", Flag: "refresh-window", Default: "5m", arg: "DURATION",
		Help: "a key is refreshed ahead only if it was requested since its last store and within this window; 0 disables refresh-ahead",
		bind: durationVar(func(c *Config) *time.Duration { return &c.RefreshWindow }, false)},
	{Env: "SWR_REFRESH_WORKERS", Flag: "refresh-workers", Default: "8", arg: "N",
		Help: "background refresh concurrency per instance (1 to 1024)",
		bind: intVar(func(c *Config) *int { return &c.RefreshWorkers }, 1, 1024)},
	{Env: "SWR_MAX_OBJECT_BYTES", Flag: "max-object-bytes", Default: "8MiB", arg: "SIZE",
		Help: "larger responses are streamed, not stored (less than 4GiB)",
		bind: sizeVar(func(c *Config) *int64 { return &c.MaxObjectBytes }, 4<<30)},
	{Env: "SWR_COMPRESS", Flag: "compress", Default: "br,gzip", arg: "CODINGS", emptyOK: true,
		Help: "content codings stored with a compressible response, compressed once when it is stored (br, gzip, comma-separated); off or empty = none",
		bind: binding{set: setCompress, value: func(c Config) slog.Value {
			if len(c.Compress) == 0 {
				return slog.StringValue("off")
			}
			return slog.StringValue(strings.Join(c.Compress, ","))
		}}},
	{Env: "SWR_COMPRESS_MIN_BYTES", Flag: "compress-min-bytes", Default: "256", arg: "SIZE",
		Help: "smaller bodies are not compressed (0 to 1MiB)",
		bind: binding{set: func(c *Config, v string) error {
			n, err := ParseSize(v)
			if err != nil {
				return err
			}
			if n > 1<<20 {
				return errors.New("must be at most 1MiB")
			}
			c.CompressMinBytes = n
			return nil
		}, value: func(c Config) slog.Value { return slog.Int64Value(c.CompressMinBytes) }}},
	{Env: "SWR_UPSTREAM_TIMEOUT", Flag: "upstream-timeout", Default: "30s", arg: "DURATION",
		Help: "origin timeout: the whole exchange of a stored response; for a streamed one, the wait for headers and each idle gap of the body",
		bind: durationVar(func(c *Config) *time.Duration { return &c.UpstreamTimeout }, true)},
	{Env: "SWR_INVALIDATE_SECRET", Flag: "invalidate-secret", arg: "TOKEN", emptyOK: true, secret: true,
		Help: "Bearer token of the private endpoints, at least 32 bytes (openssl rand -hex 32); empty disables them (404)",
		bind: secretVar(setSecret, func(c Config) string { return c.InvalidateSecret })},
	{Env: "SWR_ADMIN_LISTEN", Flag: "admin-listen", arg: "ADDR", emptyOK: true,
		Help: "optional separate listener for /_swr/*; empty = the proxy listener",
		bind: addrVar(func(c *Config) *string { return &c.AdminListen })},
	{Env: "SWR_KEY_HOST", Flag: "key-host", Default: "false",
		Help: "include the Host header in the cache key",
		bind: boolVar(func(c *Config) *bool { return &c.KeyHost })},
	{Env: "SWR_TRUSTED_PROXIES", Flag: "trusted-proxies", Default: "127.0.0.1/8,::1/128", arg: "CIDRS", emptyOK: true,
		Help: "peers (IPs or CIDRs, comma-separated) whose X-Forwarded-For/-Proto/-Host and X-Real-IP are believed; empty = none",
		bind: binding{set: setTrustedProxies, value: func(c Config) slog.Value {
			parts := make([]string, len(c.TrustedProxies))
			for i, p := range c.TrustedProxies {
				parts[i] = p.String()
			}
			return slog.StringValue(strings.Join(parts, ","))
		}}},
	{Env: "SWR_LOG_LEVEL", Flag: "log-level", Default: "info", arg: "LEVEL",
		Help: "log level: debug, info, warn or error",
		bind: binding{set: setLogLevel, value: func(c Config) slog.Value {
			return slog.StringValue(strings.ToLower(c.LogLevel.String()))
		}}},
	{Env: "SWR_LOG_FORMAT", Flag: "log-format", Default: "text", arg: "FORMAT",
		Help: "log format: text or json",
		bind: binding{set: setLogFormat, value: func(c Config) slog.Value { return slog.StringValue(c.LogFormat) }}},
	{Env: "SWR_ACCESS_LOG", Flag: "access-log", Default: "false",
		Help: "one log line per request (method, path, status, X-Cache, bytes, duration)",
		bind: boolVar(func(c *Config) *bool { return &c.AccessLog })},
	{Env: "SWR_UPSTREAM_BALANCE", Flag: "upstream-balance", Default: upstream.BalanceRoundRobin, arg: "POLICY",
		Help: "how a request picks a healthy backend: round_robin, least_conn (fewest in flight) or key_hash (by cache key)",
		bind: binding{set: setBalance, value: func(c Config) slog.Value { return slog.StringValue(c.UpstreamBalance) }}},
	{Env: "SWR_HEALTH_INTERVAL", Flag: "health-interval", Default: "30s", arg: "DURATION",
		Help: "time between two active health checks of each backend",
		bind: durationVar(func(c *Config) *time.Duration { return &c.HealthInterval }, true)},
	{Env: "SWR_HEALTH_PATH", Flag: "health-path", Default: "/", arg: "PATH",
		Help: "request target of the active health check of each backend, after its base path; it must answer 2xx (e.g. /healthz)",
		bind: binding{set: setHealthPath, value: func(c Config) slog.Value { return slog.StringValue(c.HealthPath) }}},
	{Env: "SWR_HEALTH_TIMEOUT", Flag: "health-timeout", Default: "5s", arg: "DURATION",
		Help: "a health check that takes longer fails",
		bind: durationVar(func(c *Config) *time.Duration { return &c.HealthTimeout }, true)},
	{Env: "SWR_HEALTH_FALL", Flag: "health-fall", Default: "3", arg: "N",
		Help: "consecutive failed checks that mark a backend down (1 to 100)",
		bind: intVar(func(c *Config) *int { return &c.HealthFall }, 1, 100)},
	{Env: "SWR_HEALTH_RISE", Flag: "health-rise", Default: "2", arg: "N",
		Help: "consecutive passed checks that mark a down backend up again (1 to 100)",
		bind: intVar(func(c *Config) *int { return &c.HealthRise }, 1, 100)},
	{Env: "SWR_ORIGIN_MAX_CONCURRENCY", Flag: "origin-max-concurrency", Default: "0", arg: "N",
		Help: "origin budget of this instance: requests in flight to the backends at once (0 to 100000); 0 = unlimited",
		bind: intVar(func(c *Config) *int { return &c.OriginMaxConcurrency }, 0, 100000)},
	{Env: "SWR_ORIGIN_FLEET_MAX_CONCURRENCY", Flag: "origin-fleet-max-concurrency", Default: "0", arg: "N",
		Help: "origin budget of the whole fleet: requests in flight to the backends from all instances at once (0 to 1000000); 0 = unlimited",
		bind: intVar(func(c *Config) *int { return &c.OriginFleetMaxConcurrency }, 0, 1000000)},
	{Env: "SWR_ORIGIN_MAX_WAIT", Flag: "origin-max-wait", Default: "5s", arg: "DURATION",
		Help: "how long a request waits for a slot of the origin budget before it gets its stale copy, or 503",
		bind: durationVar(func(c *Config) *time.Duration { return &c.OriginMaxWait }, true)},
	{Env: "SWR_UPSTREAM_CA_FILE", Flag: "upstream-ca-file", arg: "FILE", emptyOK: true,
		Help: "PEM bundle of CA certificates trusted for https backends besides the system roots; empty = the system roots only",
		bind: pathVar(func(c *Config) *string { return &c.UpstreamCAFile })},
	{Env: "SWR_UPSTREAM_CLIENT_CERT", Flag: "upstream-client-cert", arg: "FILE", emptyOK: true,
		Help: "PEM certificate (chain) presented to https backends that ask for one (mTLS); needs SWR_UPSTREAM_CLIENT_KEY",
		bind: pathVar(func(c *Config) *string { return &c.UpstreamClientCert })},
	{Env: "SWR_UPSTREAM_CLIENT_KEY", Flag: "upstream-client-key", arg: "FILE", emptyOK: true,
		Help: "PEM private key of SWR_UPSTREAM_CLIENT_CERT",
		bind: pathVar(func(c *Config) *string { return &c.UpstreamClientKey })},
	{Env: "SWR_UPSTREAM_SERVER_NAME", Flag: "upstream-server-name", arg: "NAME", emptyOK: true,
		Help: "name sent as SNI to https backends and that their certificates must match; empty = each backend's host",
		bind: binding{set: setServerName, value: func(c Config) slog.Value { return slog.StringValue(c.UpstreamServerName) }}},
	{Env: "SWR_UPSTREAM_INSECURE_SKIP_VERIFY", Flag: "upstream-insecure-skip-verify", Default: "false",
		Help: "accept any certificate from https backends (no verification at all: for tests, never in production)",
		bind: boolVar(func(c *Config) *bool { return &c.UpstreamInsecureSkipVerify })},
	{Env: "SWR_UPSTREAM_HOST", Flag: "upstream-host", arg: "HOST", emptyOK: true,
		Help: "Host header sent to every backend, e.g. www.example.com; empty = each backend's own host:port",
		bind: binding{set: setUpstreamHost, value: func(c Config) slog.Value { return slog.StringValue(c.UpstreamHost) }}},
	{Env: "SWR_POLICY_FILE", Flag: "policy-file", arg: "FILE", emptyOK: true,
		Help: "YAML rules file (README \"Policies\"); reloaded on SIGHUP and POST /_swr/policy/reload; empty = none",
		bind: pathVar(func(c *Config) *string { return &c.PolicyFile })},
	{Env: "SWR_POLICY_WASM", Flag: "policy-wasm", arg: "FILE", emptyOK: true,
		Help: "WebAssembly policy module with on_request / on_response hooks (README \"Wasm hooks\"); reloaded with the rules; empty = none",
		bind: pathVar(func(c *Config) *string { return &c.PolicyWasm })},
	{Env: "SWR_POLICY_POOL", Flag: "policy-pool", Default: "0", arg: "N",
		Help: "instances of the policy module, each serving one call at a time (0 to 1024); 0 = GOMAXPROCS",
		bind: intVar(func(c *Config) *int { return &c.PolicyPool }, 0, 1024)},
	{Env: "SWR_POLICY_TIMEOUT", Flag: "policy-timeout", Default: "5ms", arg: "DURATION",
		Help: "deadline of one hook call, waiting for a free instance included; a call past it is cut and the request carries on without it",
		bind: durationVar(func(c *Config) *time.Duration { return &c.PolicyTimeout }, true)},
	{Env: "SWR_ADMIN_PASSWORD", Flag: "admin-password", arg: "PASSWORD", emptyOK: true, secret: true,
		Help: "login password of the admin page (/_swr/ui/), at least 12 characters; empty = the invalidation secret",
		bind: secretVar(setAdminPassword, func(c Config) string { return c.AdminPassword })},
	{Env: "SWR_WARM_BYTES", Flag: "warm-bytes", Default: "64MiB", arg: "SIZE",
		Help: "how much of the fleet's hot set a starting instance (and POST /_swr/populate) loads from Redis into L1, at most SWR_L1_MAX_BYTES; 0 = no warm start",
		bind: binding{set: func(c *Config, v string) error {
			n, err := ParseSize(v)
			if err != nil {
				return err
			}
			c.WarmBytes = n
			return nil
		}, value: func(c Config) slog.Value { return slog.Int64Value(c.WarmBytes) }}},
}

// setCompress reads SWR_COMPRESS: "off" or empty for none, else a comma list of br and gzip
// (any case, each once).
func setCompress(c *Config, v string) error {
	c.Compress = nil
	if t := strings.TrimSpace(v); t == "" || strings.EqualFold(t, "off") {
		return nil
	}
	for item := range strings.SplitSeq(v, ",") {
		coding := strings.ToLower(strings.TrimSpace(item))
		switch {
		case coding != "br" && coding != "gzip":
			return fmt.Errorf("unknown coding %q: must be br, gzip, a list of them, or off", strings.TrimSpace(item))
		case slices.Contains(c.Compress, coding):
			return fmt.Errorf("coding %q listed twice", coding)
		}
		c.Compress = append(c.Compress, coding)
	}
	return nil
}

// secretVar binds a secret setting: the start-up log shows "***" for it (or "" when empty).
func secretVar(set func(*Config, string) error, get func(Config) string) binding {
	return binding{set: set, value: func(c Config) slog.Value {
		if get(c) == "" {
			return slog.StringValue("")
		}
		return slog.StringValue("***")
	}}
}

// setAdminPassword checks SWR_ADMIN_PASSWORD: typed by people, so not held to weakSecret's
// entropy standard, but long enough that the login's rate limit makes guessing hopeless, and
// never a placeholder or a word list entry a guesser tries first: it opens every private route.
func setAdminPassword(c *Config, v string) error {
	if strings.IndexFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 {
		return errors.New("must not contain control characters")
	}
	if v != "" {
		if err := weakPassword(v); err != nil {
			return err
		}
	}
	c.AdminPassword = v
	return nil
}

const makePassword = "choose a passphrase of several words, or make one with `openssl rand -base64 18`"

// weakPassword refuses an admin password shorter than 12 characters, one that repeats itself or
// has fewer than 6 distinct characters, and one a guesser tries first: containing, once common
// letter-for-digit swaps are undone (P@ssw0rd), a placeholder or a common password word, or six
// characters in a row of the alphabet, the digits or a keyboard row or column (abcdef, 123456,
// qwerty, 1q2w3e).
func weakPassword(v string) error {
	if len([]rune(v)) < 12 {
		return errors.New("must be at least 12 characters: " + makePassword)
	}
	lower := strings.ToLower(v)
	plain := strings.Map(func(r rune) rune {
		if i := strings.IndexRune("@4310$5!7", r); i >= 0 {
			return rune("aaeiossit"[i])
		}
		return r
	}, lower)
	for _, p := range append(placeholders, commonPasswordWords...) {
		if strings.Contains(lower, p) || strings.Contains(plain, p) {
			return errors.New("is a placeholder or a common password: " + makePassword)
		}
	}
	for _, line := range keyLines {
		rev := []rune(line)
		slices.Reverse(rev)
		for _, l := range []string{line, string(rev)} {
			for i := 0; i+6 <= len(l); i++ {
				if strings.Contains(lower, l[i:i+6]) {
					return errors.New("has a run of the alphabet, the digits or the keyboard: " + makePassword)
				}
			}
		}
	}
	distinct := map[rune]bool{}
	for _, r := range lower {
		distinct[r] = true
	}
	if period(v) <= len(v)/2 || len(distinct) < 6 {
		return errors.New("has too little variety: " + makePassword)
	}
	return nil
}

// commonPasswordWords head the lists of leaked passwords, besides the placeholders.
var commonPasswordWords = []string{"admin", "welcome", "iloveyou", "swrproxy", "monkey", "dragon", "master",
	"login", "football", "baseball", "sunshine", "princess", "shadow", "trustno", "guest", "default",
	"abc123"}

// keyLines are the runs a guesser walks: the alphabet, the digits, keyboard rows and columns.
var keyLines = []string{"abcdefghijklmnopqrstuvwxyz", "01234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm",
	"1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p", "qazwsxedcrfvtgbyhnujmikolp", "1q2w3e4r5t6y7u8i9o0p"}

func durationVar(p func(*Config) *time.Duration, positive bool) binding {
	return binding{
		set: func(c *Config, v string) error {
			d, err := ParseDuration(v)
			if err != nil {
				return err
			}
			if positive && d == 0 {
				return errors.New("must be more than 0")
			}
			*p(c) = d
			return nil
		},
		value: func(c Config) slog.Value { return slog.StringValue(p(&c).String()) },
	}
}

// sizeVar binds a size that must be more than 0 and, when below is not 0, less than below.
func sizeVar(p func(*Config) *int64, below int64) binding {
	return binding{
		set: func(c *Config, v string) error {
			n, err := ParseSize(v)
			if err != nil {
				return err
			}
			if n == 0 {
				return errors.New("must be more than 0")
			}
			if below != 0 && n >= below {
				return fmt.Errorf("must be less than %dGiB", below>>30)
			}
			*p(c) = n
			return nil
		},
		value: func(c Config) slog.Value { return slog.Int64Value(*p(&c)) },
	}
}

func intVar(p func(*Config) *int, lo, hi int) binding {
	return binding{
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < lo || n > hi {
				return fmt.Errorf("must be a whole number from %d to %d", lo, hi)
			}
			*p(c) = n
			return nil
		},
		value: func(c Config) slog.Value { return slog.IntValue(*p(&c)) },
	}
}

func boolVar(p func(*Config) *bool) binding {
	return binding{
		set: func(c *Config, v string) error {
			b, err := ParseBool(v)
			if err != nil {
				return err
			}
			*p(c) = b
			return nil
		},
		value:  func(c Config) slog.Value { return slog.BoolValue(*p(&c)) },
		isBool: true,
	}
}

// addrVar binds a listen address: host:port with a numeric port (0 picks a free one), or ""
// when the setting allows it (LoadLookup only passes "" for such settings).
func addrVar(p func(*Config) *string) binding {
	return binding{
		set: func(c *Config, v string) error {
			if v != "" {
				if _, _, err := splitListen(v); err != nil {
					return err
				}
			}
			*p(c) = v
			return nil
		},
		value: func(c Config) slog.Value { return slog.StringValue(*p(&c)) },
	}
}

// pathVar binds the name of a file that is read later (config does no I/O), or "".
func pathVar(p func(*Config) *string) binding {
	return binding{
		set: func(c *Config, v string) error {
			// A control character is a broken .env line, never part of a name someone meant.
			if strings.IndexFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 {
				return errors.New("a file name must not contain control characters")
			}
			*p(c) = v
			return nil
		},
		value: func(c Config) slog.Value { return slog.StringValue(*p(&c)) },
	}
}
