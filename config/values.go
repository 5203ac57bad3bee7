package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/upstream"

	"github.com/swrproxy/swrproxy/internal/redisconn"
)

// The parsers and checks of the values that are more than a duration, a size, an int or a bool.

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

// setUpstreams parses a comma-separated list of backend base URLs, each validated and normalised
// by upstream.ParseBackend, the same check as POST /_swr/servers. A comma inside a base path must
// be written %2C.
func setUpstreams(c *Config, v string) error {
	items := strings.Split(v, ",")
	if len(items) > upstream.MaxBackends {
		return fmt.Errorf("lists %d items, at most %d backends are allowed", len(items), upstream.MaxBackends)
	}
	out := make([]*url.URL, 0, len(items))
	seen := make(map[string]int, len(items)) // normalised URL → its item number
	for i, item := range items {
		n := i + 1 // the items are numbered from 1, as a person counts them
		item = strings.TrimSpace(item)
		if item == "" {
			return fmt.Errorf("item %d is empty (a doubled, leading or trailing comma?)", n)
		}
		u, err := upstream.ParseBackend(item)
		if err != nil {
			if len(items) == 1 {
				return err // the caller has shown the whole value already
			}
			return fmt.Errorf("item %d %q: %w", n, redactUserinfo(item), err)
		}
		// Two items for one backend would double its share of the traffic and make removing it
		// by URL ambiguous.
		if first, dup := seen[u.String()]; dup {
			return fmt.Errorf("items %d and %d are the same backend %s", first, n, u.Redacted())
		}
		seen[u.String()] = n
		out = append(out, u)
	}
	c.Upstreams = out
	return nil
}

func setBalance(c *Config, v string) error {
	switch b := strings.ToLower(v); b {
	case upstream.BalanceRoundRobin, upstream.BalanceLeastConn, upstream.BalanceKeyHash:
		c.UpstreamBalance = b
		return nil
	}
	return fmt.Errorf("must be %s, %s or %s", upstream.BalanceRoundRobin, upstream.BalanceLeastConn, upstream.BalanceKeyHash)
}

func setHealthPath(c *Config, v string) error {
	if !strings.HasPrefix(v, "/") {
		return errors.New("must start with / (e.g. /healthz)")
	}
	if !upstream.ValidTarget(v) {
		return errors.New("not a request target that can be sent as it is: no white space, control characters or #, and every % of the path followed by two hex digits")
	}
	c.HealthPath = v
	return nil
}

// setServerName accepts "" or what a certificate can be issued to: a DNS name or an IP address,
// without a scheme, port or brackets (a common slip is to paste the backend's URL or host:port).
func setServerName(c *Config, v string) error {
	if v != "" {
		a, err := netip.ParseAddr(v)
		isIP := err == nil && a.Zone() == ""
		isName := !strings.ContainsAny(v, ":[") && httpcache.ValidHost([]byte(v))
		if !isIP && !isName {
			return errors.New("must be a DNS name or an IP address, without scheme or port (e.g. origin.internal)")
		}
	}
	c.UpstreamServerName = v
	return nil
}

func setUpstreamHost(c *Config, v string) error {
	if v != "" && !httpcache.ValidHost([]byte(v)) {
		return errors.New("not a Host field value: a host name or IP address and an optional port (e.g. www.example.com or 10.0.0.1:8080)")
	}
	c.UpstreamHost = v
	return nil
}

func setRedis(c *Config, v string) error {
	if err := redisconn.CheckSyntax(v); err != nil {
		return err
	}
	c.RedisURL = v
	return nil
}

// redactRedis masks the credentials of a SWR_REDIS_URL for logs and errors: the userinfo (the
// user name stays) and the query's values but addr and cluster. The bare form has none.
func redactRedis(v string) string {
	return redactQuery(redactUserinfo(v))
}

// redactUserinfo masks everything between "://" (or the start) and the last "@" of a URL-like
// value that may not parse, so an error message cannot show a password, whether it was written
// as user:password or alone (go-redis reads a lone userinfo as the password).
func redactUserinfo(v string) string {
	start := 0
	if i := strings.Index(v, "://"); i >= 0 {
		start = i + len("://")
	}
	j := strings.LastIndex(v[start:], "@")
	if j < 0 {
		return v
	}
	if user, _, ok := strings.Cut(v[start:start+j], ":"); ok && !strings.ContainsAny(user, "/?#@") {
		return v[:start] + user + ":xxxxx" + v[start+j:]
	}
	return v[:start] + "xxxxx" + v[start+j:]
}

// redactQuery masks the values of a URL's query but for addr and cluster (addresses, a switch):
// a password written as ?password=… must not reach a log either.
func redactQuery(v string) string {
	base, query, ok := strings.Cut(v, "?")
	if !ok {
		return v
	}
	parts := strings.Split(query, "&")
	for i, p := range parts {
		if name, _, ok := strings.Cut(p, "="); ok && name != "addr" && name != "cluster" {
			parts[i] = name + "=xxxxx"
		}
	}
	return base + "?" + strings.Join(parts, "&")
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
