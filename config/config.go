// Package config owns the typed configuration of swrproxy: the settings, their defaults, the
// parsing of environment variables and command-line flags, and validation with errors that name
// the setting and the bad value. It does no I/O: main loads .env (godotenv) first and passes in
// the environment and os.Args[1:].
//
// Settings is the one list of settings, in DESIGN.md order; both the environment and the flags
// are read through it.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is the validated configuration. Load returns it; the zero value is not usable.
type Config struct {
	Listen               string         // SWR_LISTEN: host:port of the proxy listener
	Upstream             *url.URL       // SWR_UPSTREAM: http or https, host set, path without trailing slash (a prefix), no query
	RedisURL             string         // SWR_REDIS_URL: redis:// or rediss:// URL, or host:port,… cluster seeds; "" = L1 only
	L1MaxBytes           int64          // SWR_L1_MAX_BYTES, > 0
	L1MaxTTL             time.Duration  // SWR_L1_MAX_TTL, > 0
	DefaultTTL           time.Duration  // SWR_DEFAULT_TTL, ≥ 0
	StaleWhileRevalidate time.Duration  // SWR_STALE_WHILE_REVALIDATE, ≥ 0
	StaleIfError         time.Duration  // SWR_STALE_IF_ERROR, ≥ 0
	RefreshWindow        time.Duration  // SWR_REFRESH_WINDOW, ≥ 0; 0 disables refresh-ahead
	RefreshWorkers       int            // SWR_REFRESH_WORKERS, 1..1024
	MaxObjectBytes       int64          // SWR_MAX_OBJECT_BYTES, > 0 and < 4GiB
	UpstreamTimeout      time.Duration  // SWR_UPSTREAM_TIMEOUT, > 0
	InvalidateSecret     string         // SWR_INVALIDATE_SECRET: "" disables the private endpoints
	AdminListen          string         // SWR_ADMIN_LISTEN: host:port, or "" for the proxy listener
	KeyHost              bool           // SWR_KEY_HOST
	TrustedProxies       []netip.Prefix // SWR_TRUSTED_PROXIES: peers whose forwarding fields are believed
	LogLevel             slog.Level     // SWR_LOG_LEVEL
	LogFormat            string         // SWR_LOG_FORMAT: "text" or "json"
	AccessLog            bool           // SWR_ACCESS_LOG
}

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
		Help: "a key requested within this window is hot and refreshed ahead; 0 disables refresh-ahead",
		bind: durationVar(func(c *Config) *time.Duration { return &c.RefreshWindow }, false)},
	{Env: "SWR_REFRESH_WORKERS", Flag: "refresh-workers", Default: "8", arg: "N",
		Help: "background refresh concurrency per instance (1 to 1024)",
		bind: intVar(func(c *Config) *int { return &c.RefreshWorkers }, 1, 1024)},
	{Env: "SWR_MAX_OBJECT_BYTES", Flag: "max-object-bytes", Default: "8MiB", arg: "SIZE",
		Help: "larger responses are streamed, not stored (less than 4GiB)",
		bind: sizeVar(func(c *Config) *int64 { return &c.MaxObjectBytes }, 4<<30)},
	{Env: "SWR_UPSTREAM_TIMEOUT", Flag: "upstream-timeout", Default: "30s", arg: "DURATION",
		Help: "whole origin request timeout",
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

// ErrHelp is wrapped by the error Load returns for -h, -help or --help. That error's text is the
// usage text: print it to standard output and exit 0.
var ErrHelp = flag.ErrHelp

// Load builds a Config from the environment and the command-line arguments (os.Args[1:]).
// getenv is os.Getenv in production; an empty value counts as unset, so the default applies.
// Use LoadLookup with os.LookupEnv to let an explicitly empty SWR_REDIS_URL mean "L1 only".
// See LoadLookup for the rest of the contract.
func Load(getenv func(string) string, args []string) (Config, error) {
	return LoadLookup(func(key string) (string, bool) {
		v := getenv(key)
		return v, v != ""
	}, args)
}

// LoadLookup is Load with a lookup function such as os.LookupEnv, which tells an unset variable
// from an empty one. A variable set to the empty string (or only white space) means "empty" for
// the settings where empty has a meaning (SWR_REDIS_URL: L1 only; SWR_INVALIDATE_SECRET,
// SWR_ADMIN_LISTEN: off) and "use the default" for the others, so a .env template with blank
// lines does not break start-up.
//
// Every setting also has a flag, --name or --name=value (-name works too), named after the
// variable in kebab case without SWR_; a flag wins over the environment, and a bool flag given
// alone (--key-host) means true. An unknown flag, a flag without its value or a stray positional
// argument is an error. -h, -help or --help returns an error wrapping ErrHelp whose text is the
// usage.
//
// Otherwise the error is nil or an errors.Join of every problem found, one line each, such as
//
//	config: SWR_DEFAULT_TTL="ten": not a duration (use Go syntax like 90s or 5m, or a number of seconds)
//	config: SWR_DEFAULT_TTL="ten" (from --default-ttl): not a duration (…)
//
// Secrets are never echoed and Redis passwords are masked.
func LoadLookup(lookup func(string) (string, bool), args []string) (Config, error) {
	fs := flag.NewFlagSet("swrproxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	flags := make([]flagValue, len(Settings))
	for i := range Settings {
		flags[i].isBool = Settings[i].bind.isBool
		fs.Var(&flags[i], Settings[i].Flag, Settings[i].Help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, helpError{}
		}
		return Config{}, flagError(err)
	}
	if rest := fs.Args(); len(rest) > 0 {
		// Parsing stopped at rest[0], so later flags were not read: report only this.
		hint := "settings are flags like --upstream=http://origin:8080 or SWR_* variables"
		if _, err := ParseBool(rest[0]); err == nil {
			hint = "write a bool flag's value with =, like --key-host=false"
		}
		return Config{}, fmt.Errorf("config: unexpected argument %q: %s", rest[0], hint)
	}

	var c Config
	var errs []error
	ok := make(map[string]bool, len(Settings)) // Env → parsed without error
	for i := range Settings {
		s := &Settings[i]
		v, from := s.Default, ""
		if ev, set := lookup(s.Env); set {
			if !s.secret {
				ev = strings.TrimSpace(ev)
			}
			if ev != "" || s.emptyOK {
				v = ev
			}
		}
		if f := flags[i]; f.set {
			v, from = f.v, "--"+s.Flag
			if !s.secret {
				v = strings.TrimSpace(v)
			}
		}
		if v == "" && s.Required {
			errs = append(errs, fmt.Errorf("config: %s is required (%s)", s.Env, s.Help))
			continue
		}
		if err := s.bind.set(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("config: %s: %w", s.describe(v, from), err))
			continue
		}
		ok[s.Env] = true
	}
	if ok["SWR_LISTEN"] && ok["SWR_ADMIN_LISTEN"] && sameListener(c.Listen, c.AdminListen) {
		errs = append(errs, fmt.Errorf("config: SWR_ADMIN_LISTEN=%q: the same address as SWR_LISTEN=%q; leave it empty to serve /_swr/ on the proxy listener",
			c.AdminListen, c.Listen))
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// describe names the setting and the value for an error: SWR_X="v", plus the flag when the value
// came from one.
func (s *Setting) describe(v, from string) string {
	var b strings.Builder
	b.WriteString(s.Env)
	switch {
	case s.secret:
		b.WriteString(" (value hidden)")
	case s.creds:
		fmt.Fprintf(&b, "=%q", redactUserinfo(v))
	default:
		fmt.Fprintf(&b, "=%q", v)
	}
	if from != "" {
		fmt.Fprintf(&b, " (from %s)", from)
	}
	return b.String()
}

// flagError rewords the flag package's syntax errors, which spell every flag with one dash.
func flagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("config: unknown flag --%s (see --help)", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("config: flag --%s needs a value (see --help)", name)
	}
	return fmt.Errorf("config: %s (see --help)", msg)
}

// flagValue records a flag's raw text; Load validates it with the environment's values, so one
// run reports every bad value instead of stopping at the first bad flag.
type flagValue struct {
	v      string
	set    bool
	isBool bool
}

func (f *flagValue) String() string { return f.v }

func (f *flagValue) Set(v string) error {
	f.v, f.set = v, true
	return nil
}

func (f *flagValue) IsBoolFlag() bool { return f.isBool }

// helpError is the answer to --help: its text is the usage.
type helpError struct{}

func (helpError) Error() string { return Usage() }
func (helpError) Unwrap() error { return ErrHelp }

// Usage returns the usage text: every flag with its variable, its default and its meaning.
func Usage() string {
	var b strings.Builder
	b.WriteString(`Usage: swrproxy [flags]

swrproxy is a stale-while-revalidate caching reverse proxy. Every setting is read from its
environment variable (also from .env) and can be overridden by its flag: --name value or
--name=value. Durations: Go syntax like 90s, 5m, 1h30m, or a number of seconds.
Sizes: bytes, or a number with KiB, MiB or GiB like 512KiB or 1.5MiB.

`)
	for _, s := range Settings {
		name := "--" + s.Flag
		if s.bind.isBool {
			name += "[=BOOL]"
		} else {
			name += " " + s.arg
		}
		def := "default " + strconv.Quote(s.Default)
		switch {
		case s.Required:
			def = "required"
		case s.Default == "":
			def = "default empty"
		}
		fmt.Fprintf(&b, "  %-34s %s, %s\n        %s\n", name, s.Env, def, s.Help)
	}
	return b.String()
}

// LogValue implements slog.LogValuer: a group with one attribute per setting, named after the
// variable in snake case without SWR_ ("listen", "redis_url", …), for one start-up log line.
// The invalidate secret shows as "***" when set and "" when not; a Redis password is masked.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, len(Settings))
	for i, s := range Settings {
		attrs[i] = slog.Attr{Key: strings.ToLower(strings.TrimPrefix(s.Env, "SWR_")), Value: s.bind.value(c)}
	}
	return slog.GroupValue(attrs...)
}

// String returns the settings as key=value pairs, masked as in LogValue, so printing a Config
// with fmt cannot leak the secret.
func (c Config) String() string {
	attrs := c.LogValue().Group()
	parts := make([]string, len(attrs))
	for i, a := range attrs {
		parts[i] = a.String()
	}
	return strings.Join(parts, " ")
}

// RedisAddrs returns the host:port seeds when RedisURL is the cluster form ("h1:6379,h2:6379"),
// and nil when it is a redis:// or rediss:// URL (use redis.ParseURL) or empty (no L2).
func (c Config) RedisAddrs() []string {
	addrs, _ := parseRedis(c.RedisURL)
	return addrs
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

// splitListen splits a listen address into host and numeric port.
func splitListen(addr string) (host string, port int, err error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, errors.New("not a host:port address (e.g. :8000 or 127.0.0.1:8000)")
	}
	port, err = strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 || !isDigits(ps) {
		return "", 0, errors.New("the port must be a number from 0 to 65535")
	}
	return host, port, nil
}

// sameListener reports whether listening on a and on b would collide: the same non-zero port on
// the same host, or on any host when one of them listens on every interface.
func sameListener(a, b string) bool {
	ha, pa, errA := splitListen(a)
	hb, pb, errB := splitListen(b)
	if errA != nil || errB != nil || pa != pb || pa == 0 {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}

func setUpstream(c *Config, v string) error {
	const eg = " (e.g. http://origin:8080)"
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return errors.New("not a URL" + eg)
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("the scheme must be http or https" + eg)
	case u.Opaque != "" || u.Hostname() == "":
		return errors.New("the host is missing" + eg)
	case u.User != nil:
		return errors.New("credentials in the URL are not supported")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("must not have a query: the client's query is appended to each request")
	case u.Fragment != "" || strings.Contains(v, "#"):
		return errors.New("must not have a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("the port must be a number from 1 to 65535")
		}
	}
	// The path is a prefix for every proxied path, which starts with "/".
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	c.Upstream = u
	return nil
}

func setRedis(c *Config, v string) error {
	if _, err := parseRedis(v); err != nil {
		return err
	}
	c.RedisURL = v
	return nil
}

// parseRedis validates a SWR_REDIS_URL value and returns the cluster seeds for the host:port form,
// nil for "" and for the URL form. Errors never contain the value (it may hold a password).
func parseRedis(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	if strings.Contains(v, "://") {
		const eg = " (e.g. redis://redis:6379/0)"
		u, err := url.Parse(v)
		switch {
		case err != nil:
			return nil, errors.New("not a URL" + eg)
		case u.Scheme != "redis" && u.Scheme != "rediss":
			return nil, errors.New("the scheme must be redis:// or rediss:// (TLS)" + eg)
		case u.Opaque != "" || u.Hostname() == "":
			return nil, errors.New("the host is missing" + eg)
		case u.Fragment != "" || strings.Contains(v, "#"):
			return nil, errors.New("must not have a fragment" + eg)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return nil, errors.New("the port must be a number from 1 to 65535")
			}
		}
		if db := strings.TrimPrefix(u.Path, "/"); db != "" {
			if n, err := strconv.Atoi(db); err != nil || n < 0 || !isDigits(db) {
				return nil, errors.New("the path must be a database number like /0" + eg)
			}
		}
		return nil, nil
	}
	parts := strings.Split(v, ",")
	addrs := make([]string, 0, len(parts))
	for _, a := range parts {
		a = strings.TrimSpace(a)
		host, ps, err := net.SplitHostPort(a)
		if err != nil || host == "" || strings.ContainsAny(host, "@/?#, \t") {
			return nil, errors.New("not a redis:// or rediss:// URL, nor a comma-separated list of cluster host:port seeds")
		}
		if n, err := strconv.Atoi(ps); err != nil || n < 1 || n > 65535 || !isDigits(ps) {
			return nil, fmt.Errorf("seed %q: the port must be a number from 1 to 65535", a)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// redactRedis masks the password of a redis:// URL as url.URL.Redacted does. The cluster form has
// no credentials.
func redactRedis(v string) string {
	if !strings.Contains(v, "://") {
		return v
	}
	u, err := url.Parse(v)
	if err != nil {
		return redactUserinfo(v)
	}
	return u.Redacted()
}

// redactUserinfo masks everything between "://" (or the start) and the last "@" of a URL-like
// value that may not parse, so an error message cannot show a password.
func redactUserinfo(v string) string {
	start := 0
	if i := strings.Index(v, "://"); i >= 0 {
		start = i + len("://")
	}
	j := strings.LastIndex(v[start:], "@")
	if j < 0 {
		return v
	}
	return v[:start] + "xxxxx" + v[start+j:]
}

// minSecret is the shortest invalidation secret start-up accepts: 32 bytes, the output of
// `openssl rand -hex 16` at the least; `openssl rand -hex 32` is what the messages suggest.
const minSecret = 32

// placeholders are parts of the sample values of templates and tutorials, and words people type:
// a secret containing one was copied or chosen, not made.
var placeholders = []string{"change-me", "changeme", "change_me", "replace-me", "replaceme", "replace_me",
	"your-secret", "yoursecret", "your_secret", "example", "placeholder", "secret", "password", "passwd",
	"insecure", "dummy", "qwerty", "letmein", "${"}

const makeSecret = "make one with `openssl rand -hex 32`, or leave it empty to turn the private endpoints off"

func setSecret(c *Config, v string) error {
	// It travels in an Authorization header: white space would be trimmed or split on the
	// way, and the token would never match.
	if strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return errors.New("must not contain white space or control characters")
	}
	if v == "" {
		c.InvalidateSecret = ""
		return nil
	}
	if err := weakSecret(v); err != nil {
		return err
	}
	c.InvalidateSecret = v
	return nil
}

// weakSecret says why v is not a secret start-up accepts, or returns nil. The output of
// `openssl rand -hex 32` (or -base64 32) passes; what people make up mostly does not.
func weakSecret(v string) error {
	for i := 0; i < len(v); i++ {
		if v[i] > '~' {
			return errors.New("must be printable ASCII: " + makeSecret)
		}
	}
	lower := strings.ToLower(v)
	for _, p := range placeholders {
		if strings.Contains(lower, p) {
			return errors.New("is a placeholder or a word, not a random secret: " + makeSecret)
		}
	}
	if len(v) < minSecret {
		return fmt.Errorf("is %d bytes, fewer than %d: %s", len(v), minSecret, makeSecret)
	}
	if p := period(v); p <= len(v)/2 {
		return errors.New("repeats itself, so it is not random: " + makeSecret)
	}
	// Shannon entropy of the characters, times the length: random hex of 32 characters scores
	// about 115 bits (under 80 in none of 100 000 draws), "xxxx…x1234567" about 48.
	counts := map[byte]int{}
	for i := 0; i < len(v); i++ {
		counts[v[i]]++
	}
	bits := 0.0
	for _, n := range counts {
		p := float64(n) / float64(len(v))
		bits -= float64(n) * math.Log2(p)
	}
	if bits < 80 || len(counts) < 8 {
		return errors.New("has too little variety to be random: " + makeSecret)
	}
	return nil
}

// period returns the length of the shortest string whose repetition (the last one cut short)
// makes up v.
func period(v string) int {
	for p := 1; p < len(v); p++ {
		if v[p:] == v[:len(v)-p] {
			return p
		}
	}
	return len(v)
}

// setTrustedProxies parses a comma-separated list of IP addresses and CIDR prefixes.
func setTrustedProxies(c *Config, v string) error {
	var out []netip.Prefix
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			if a := p.Addr(); a.Is4In6() {
				// Peers are compared unmapped: ::ffff:10.0.0.0/104 is 10.0.0.0/8.
				if p.Bits() < 96 {
					return fmt.Errorf("%q: an IPv4-mapped prefix must be /96 or longer", part)
				}
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("%q is not an IP address or CIDR prefix (e.g. 10.0.0.0/8 or 127.0.0.1)", part)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	c.TrustedProxies = out
	return nil
}

func setLogLevel(c *Config, v string) error {
	switch strings.ToLower(v) {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		return errors.New("must be debug, info, warn or error")
	}
	return nil
}

func setLogFormat(c *Config, v string) error {
	switch f := strings.ToLower(v); f {
	case "text", "json":
		c.LogFormat = f
		return nil
	}
	return errors.New("must be text or json")
}
