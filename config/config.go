// Package config owns the typed configuration of swrproxy: the settings, their defaults, the
// parsing of environment variables and command-line flags, and validation with errors that name
// the setting and the bad value. It does no I/O: main loads .env (godotenv) first and passes in
// the environment and os.Args[1:].
//
// Settings is the one list of settings, in the order of the README's "Configuration" table; both
// the environment and the flags are read through it.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/swrproxy/swrproxy/internal/redisconn"
)

// Config is the validated configuration. LoadLookup returns it; the zero value is not usable.
type Config struct {
	Listen                string         // SWR_LISTEN: host:port of the proxy listener
	Upstreams             []*url.URL     // SWR_UPSTREAM: 1 to 64 distinct backends, each normalised by upstream.ParseBackend
	RedisURL              string         // SWR_REDIS_URL: see redisconn.Parse; "" = L1 only
	RedisMasterName       string         // SWR_REDIS_MASTER_NAME: Sentinel's name of the primary; "" = no Sentinel
	RedisCAFile           string         // SWR_REDIS_CA_FILE: a PEM bundle trusted for rediss:// besides the system roots
	RedisSentinelPassword string         // SWR_REDIS_SENTINEL_PASSWORD: the sentinels' requirepass; "" = none
	L1MaxBytes            int64          // SWR_L1_MAX_BYTES, > 0
	L1MaxTTL              time.Duration  // SWR_L1_MAX_TTL, > 0
	DefaultTTL            time.Duration  // SWR_DEFAULT_TTL, ≥ 0
	StaleWhileRevalidate  time.Duration  // SWR_STALE_WHILE_REVALIDATE, ≥ 0
	StaleIfError          time.Duration  // SWR_STALE_IF_ERROR, ≥ 0
	RefreshWindow         time.Duration  // SWR_REFRESH_WINDOW, ≥ 0; 0 disables refresh-ahead
	RefreshWorkers        int            // SWR_REFRESH_WORKERS, 1..1024
	MaxObjectBytes        int64          // SWR_MAX_OBJECT_BYTES, > 0 and < 4GiB
	Compress              []string       // SWR_COMPRESS: codings stored ("br", "gzip"), each once, in order; nil = off
	CompressMinBytes      int64          // SWR_COMPRESS_MIN_BYTES, 0..1MiB: smaller bodies are not compressed
	UpstreamTimeout       time.Duration  // SWR_UPSTREAM_TIMEOUT, > 0
	InvalidateSecret      string         // SWR_INVALIDATE_SECRET: "" disables the private endpoints
	AdminPassword         string         // SWR_ADMIN_PASSWORD: the admin page's login; "" = InvalidateSecret
	WarmBytes             int64          // SWR_WARM_BYTES, >= 0: warm start's budget (0 = off), at most L1MaxBytes
	AdminListen           string         // SWR_ADMIN_LISTEN: host:port, or "" for the proxy listener
	KeyHost               bool           // SWR_KEY_HOST
	TrustedProxies        []netip.Prefix // SWR_TRUSTED_PROXIES: peers whose forwarding fields are believed
	LogLevel              slog.Level     // SWR_LOG_LEVEL
	LogFormat             string         // SWR_LOG_FORMAT: "text" or "json"
	AccessLog             bool           // SWR_ACCESS_LOG

	UpstreamBalance            string        // SWR_UPSTREAM_BALANCE: upstream.BalanceRoundRobin, BalanceLeastConn or BalanceKeyHash
	HealthInterval             time.Duration // SWR_HEALTH_INTERVAL, > 0
	HealthPath                 string        // SWR_HEALTH_PATH: a request target starting with "/" (upstream.ValidTarget)
	HealthTimeout              time.Duration // SWR_HEALTH_TIMEOUT, > 0
	HealthFall                 int           // SWR_HEALTH_FALL, 1..100
	HealthRise                 int           // SWR_HEALTH_RISE, 1..100
	OriginMaxConcurrency       int           // SWR_ORIGIN_MAX_CONCURRENCY, 0..100000; 0 = unlimited
	OriginFleetMaxConcurrency  int           // SWR_ORIGIN_FLEET_MAX_CONCURRENCY, 0..1000000; 0 = unlimited
	OriginMaxWait              time.Duration // SWR_ORIGIN_MAX_WAIT, > 0
	UpstreamCAFile             string        // SWR_UPSTREAM_CA_FILE: a PEM bundle trusted besides the system roots; "" = none
	UpstreamClientCert         string        // SWR_UPSTREAM_CLIENT_CERT: PEM file; set together with UpstreamClientKey
	UpstreamClientKey          string        // SWR_UPSTREAM_CLIENT_KEY: PEM file; set together with UpstreamClientCert
	UpstreamServerName         string        // SWR_UPSTREAM_SERVER_NAME: a DNS name or IP address; "" = each backend's host
	UpstreamInsecureSkipVerify bool          // SWR_UPSTREAM_INSECURE_SKIP_VERIFY
	UpstreamHost               string        // SWR_UPSTREAM_HOST: a Host field value (httpcache.ValidHost); "" = each backend's host
	PolicyFile                 string        // SWR_POLICY_FILE: the rules file; "" = none (loaded and checked by policy.NewHolder)
	PolicyWasm                 string        // SWR_POLICY_WASM: the WebAssembly policy module; "" = none
	PolicyPool                 int           // SWR_POLICY_POOL, 0..1024: instances of the module; 0 = GOMAXPROCS
	PolicyTimeout              time.Duration // SWR_POLICY_TIMEOUT, > 0: deadline of one hook call
}

// ErrHelp is wrapped by the error LoadLookup returns for -h, -help or --help. That error's text is the
// usage text: print it to standard output and exit 0.
var ErrHelp = flag.ErrHelp

// LoadLookup builds a Config from the environment, read with a lookup function such as
// os.LookupEnv (which tells an unset variable from an empty one), and the command-line arguments
// (os.Args[1:]). A variable set to the empty string (or, but for the secret, only white space)
// means "empty" for the settings where empty has a meaning (SWR_REDIS_URL: L1 only;
// SWR_REDIS_MASTER_NAME, SWR_REDIS_CA_FILE, SWR_INVALIDATE_SECRET, SWR_ADMIN_PASSWORD,
// SWR_ADMIN_LISTEN, SWR_TRUSTED_PROXIES, the SWR_UPSTREAM_ TLS files, server name and host,
// SWR_POLICY_FILE and SWR_POLICY_WASM: off) and "use the default" for the others, so a .env
// template with blank lines does not break start-up. (A secret of white space is refused: it
// would never match.)
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
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, helpError{}
		}
		return Config{}, flagError(err)
	}
	if *version {
		return Config{}, ErrVersion
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
	if ok["SWR_UPSTREAM_CLIENT_CERT"] && ok["SWR_UPSTREAM_CLIENT_KEY"] && (c.UpstreamClientCert == "") != (c.UpstreamClientKey == "") {
		errs = append(errs, fmt.Errorf("config: SWR_UPSTREAM_CLIENT_CERT=%q, SWR_UPSTREAM_CLIENT_KEY=%q: a client certificate needs both, set them together or neither",
			c.UpstreamClientCert, c.UpstreamClientKey))
	}
	if ok["SWR_REDIS_URL"] && ok["SWR_REDIS_MASTER_NAME"] {
		if _, err := redisconn.Parse(c.RedisURL, c.RedisMasterName); err != nil {
			errs = append(errs, fmt.Errorf("config: SWR_REDIS_URL=%q, SWR_REDIS_MASTER_NAME=%q: %w", redactRedis(c.RedisURL), c.RedisMasterName, err))
		} else if ok["SWR_REDIS_SENTINEL_PASSWORD"] && c.RedisSentinelPassword != "" && c.RedisMasterName == "" {
			errs = append(errs, errors.New("config: SWR_REDIS_SENTINEL_PASSWORD (value hidden) is set but SWR_REDIS_MASTER_NAME is empty: it is the sentinels' password"))
		} else if ok["SWR_REDIS_CA_FILE"] && c.RedisCAFile != "" && !c.Redis().TLS {
			errs = append(errs, fmt.Errorf("config: SWR_REDIS_CA_FILE=%q: it verifies TLS, but SWR_REDIS_URL=%q is not rediss://", c.RedisCAFile, redactRedis(c.RedisURL)))
		}
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
		if s.Env == "SWR_REDIS_URL" {
			v = redactRedis(v) // a go-redis URL may carry a password in its query too
		} else {
			v = redactUserinfo(v)
		}
		fmt.Fprintf(&b, "=%q", v)
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

// flagValue records a flag's raw text; LoadLookup validates it with the environment's values, so one
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

// ErrVersion is what LoadLookup returns for --version: print the version to standard output and exit 0.
var ErrVersion = errors.New("config: --version")

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

  --version                          print the version and exit
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

// Redis returns where the L2 lives (SWR_REDIS_URL with SWR_REDIS_MASTER_NAME); Kind None when
// SWR_REDIS_URL is empty.
func (c Config) Redis() redisconn.Target {
	t, _ := redisconn.Parse(c.RedisURL, c.RedisMasterName) // checked by LoadLookup
	t.SentinelPassword = c.RedisSentinelPassword
	return t
}
