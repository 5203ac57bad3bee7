package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Settings: the one list of settings, in DESIGN.md order, and how each binds to its Config field.

// Setting describes one setting. Settings lists them all; treat it as read-only.
type Setting struct {
	Env      string // environment variable, e.g. "SWR_LISTEN"
	Flag     string // command-line flag without dashes, e.g. "listen"
	Default  string // the value used when neither the environment nor a flag sets it
	Help     string // what it means, one line
	Required bool   // no default: Load fails when it is not set

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

// Settings lists every setting in DESIGN.md order. Load reads each from its environment variable
// and its flag; README and usage texts can list them from here.
var Settings = []Setting{
	{Env: "SWR_LISTEN", Flag: "listen", Default: ":8000", arg: "ADDR",
		Help: "address of the proxy listener",
		bind: addrVar(func(c *Config) *string { return &c.Listen })},
	{Env: "SWR_UPSTREAM", Flag: "upstream", Required: true, arg: "URL", creds: true,
		Help: "the origin base URL, e.g. http://origin:8080",
		bind: binding{set: setUpstream, value: func(c Config) slog.Value {
			if c.Upstream == nil {
				return slog.StringValue("")
			}
			return slog.StringValue(c.Upstream.Redacted())
		}}},
	{Env: "SWR_REDIS_URL", Flag: "redis-url", Default: "redis://127.0.0.1:6379/0", arg: "URL", emptyOK: true, creds: true,
		Help: "L2: redis:// or rediss:// (TLS) URL, or comma-separated host:port seeds of a cluster; empty = L1 only",
		bind: binding{set: setRedis, value: func(c Config) slog.Value { return slog.StringValue(redactRedis(c.RedisURL)) }}},
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
	{Env: "SWR_UPSTREAM_TIMEOUT", Flag: "upstream-timeout", Default: "30s", arg: "DURATION",
		Help: "origin timeout: the whole exchange of a stored response; for a streamed one, the wait for headers and each idle gap of the body",
		bind: durationVar(func(c *Config) *time.Duration { return &c.UpstreamTimeout }, true)},
	{Env: "SWR_INVALIDATE_SECRET", Flag: "invalidate-secret", arg: "TOKEN", emptyOK: true, secret: true,
		Help: "Bearer token of the private endpoints, at least 32 bytes (openssl rand -hex 32); empty disables them (404)",
		bind: binding{set: setSecret, value: func(c Config) slog.Value {
			if c.InvalidateSecret == "" {
				return slog.StringValue("")
			}
			return slog.StringValue("***")
		}}},
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
}

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
// when the setting allows it (Load only passes "" for such settings).
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
