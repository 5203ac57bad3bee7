// Package redisconn reads where the L2 lives (SWR_REDIS_URL, SWR_REDIS_MASTER_NAME) and builds
// the one Redis client swrproxy uses, for a single server, a Redis Cluster or a Sentinel-managed
// primary alike, with the same deadlines and no retries. Config validates with Parse; main and
// the tests connect with Client, so tests run on the client production runs.
package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Kind is the Redis deployment a Target names.
type Kind uint8

const (
	None     Kind = iota // no L2
	Single               // one server
	Cluster              // a Redis Cluster: Addrs are seeds
	Sentinel             // a primary found through Sentinel: Addrs are the sentinels
)

func (k Kind) String() string {
	return [...]string{"none", "single", "cluster", "sentinel"}[k]
}

// Target is a parsed SWR_REDIS_URL with SWR_REDIS_MASTER_NAME.
type Target struct {
	Kind  Kind
	Addrs []string // host:port of the server, the cluster's seeds, or the sentinels
	// Username and Password authenticate to the data nodes (for Sentinel too: the sentinels
	// themselves are asked without credentials).
	Username, Password string
	DB                 int  // a single server's or a Sentinel primary's database
	TLS                bool // rediss://: TLS to every node (and to the sentinels)
	MasterName         string
	// SentinelPassword authenticates to the sentinels (SWR_REDIS_SENTINEL_PASSWORD), "" for none.
	SentinelPassword string
}

// Parse reads SWR_REDIS_URL v and SWR_REDIS_MASTER_NAME master. The forms:
//
//	""                                          no L2
//	host:port                                   one server (or one sentinel with master)
//	h1:6379,h2:6379,…                           cluster seeds (or sentinels with master)
//	redis[s]://[user:pass@]host[:port][/db]      one server (or one sentinel)
//	redis[s]://[user:pass@]h1:6379?addr=h2:6379&addr=h3:6379
//	                                            cluster seeds (or sentinels), go-redis' ParseClusterURL form
//	redis[s]://[user:pass@]cfg:6379?cluster=true a cluster behind one address (a managed
//	                                            cluster's configuration endpoint)
//
// Two or more addresses without master are a cluster. In the URL form a port defaults to 6379
// (26379 for a sentinel); the bare form names every port. A cluster has only database 0. Errors
// never contain the password.
func Parse(v, master string) (Target, error) { return parse(v, master, true) }

// CheckSyntax reports whether v is a SWR_REDIS_URL value in one of the forms Parse reads, without
// the rules that depend on SWR_REDIS_MASTER_NAME (a cluster's only database, a sentinel's default
// port): config checks a setting's own value first, then the two together with Parse.
func CheckSyntax(v string) error {
	_, err := parse(v, "", false)
	return err
}

func parse(v, master string, whole bool) (Target, error) {
	if strings.IndexFunc(master, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return Target{}, errors.New("SWR_REDIS_MASTER_NAME: must not contain white space or control characters")
	}
	if v == "" {
		if master != "" {
			return Target{}, errors.New("SWR_REDIS_MASTER_NAME is set but SWR_REDIS_URL is empty: list the sentinels in SWR_REDIS_URL")
		}
		return Target{}, nil
	}
	t := Target{MasterName: master}
	defaultPort := "6379"
	if master != "" {
		defaultPort = "26379"
	}
	var err error
	cluster := false
	if strings.Contains(v, "://") {
		cluster, err = t.parseURL(v, defaultPort)
	} else {
		t.Addrs, err = parseSeeds(v)
	}
	if err != nil {
		return Target{}, err
	}
	switch {
	case master != "" && cluster:
		return Target{}, errors.New("cluster=true and SWR_REDIS_MASTER_NAME (Sentinel) exclude each other")
	case master != "":
		t.Kind = Sentinel
	case len(t.Addrs) > 1 || cluster:
		t.Kind = Cluster
		if t.DB != 0 && whole {
			return Target{}, errors.New("a Redis Cluster has only database 0: drop the path or use /0")
		}
	default:
		t.Kind = Single
	}
	return t, nil
}

const urlExample = " (e.g. redis://redis:6379/0, or redis://user:pass@h1:6379?addr=h2:6379&addr=h3:6379 for a cluster)"

// parseURL reads the URL form into t, and reports whether it says cluster=true.
func (t *Target) parseURL(v, defaultPort string) (cluster bool, err error) {
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return false, errors.New("not a URL" + urlExample)
	case u.Scheme != "redis" && u.Scheme != "rediss":
		return false, errors.New("the scheme must be redis:// or rediss:// (TLS)" + urlExample)
	case u.Opaque != "" || u.Hostname() == "":
		return false, errors.New("the host is missing" + urlExample)
	case u.Fragment != "" || strings.Contains(v, "#"):
		return false, errors.New("must not have a fragment" + urlExample)
	}
	t.TLS = u.Scheme == "rediss"
	if u.User != nil {
		// user:password, or a lone password (as go-redis reads redis://secret@host).
		var ok bool
		if t.Password, ok = u.User.Password(); ok {
			t.Username = u.User.Username()
		} else {
			t.Password = u.User.Username()
		}
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
	}
	first, err := checkAddr(net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return false, err
	}
	t.Addrs = []string{first}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 || !isDigits(db) {
			return false, errors.New("the path must be a database number like /0" + urlExample)
		}
		t.DB = n
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return false, errors.New("the query is not name=value pairs" + urlExample)
	}
	for name, vs := range q {
		switch name {
		case "addr":
			for _, a := range vs {
				if _, _, err := net.SplitHostPort(a); err != nil && !strings.ContainsAny(a, "[]:") {
					a = net.JoinHostPort(a, defaultPort) // a host without a port, as the URL's own
				}
				a, err := checkAddr(a)
				if err != nil {
					return false, err
				}
				t.Addrs = append(t.Addrs, a)
			}
		case "cluster":
			if len(vs) != 1 || (vs[0] != "true" && vs[0] != "false") {
				return false, errors.New("cluster must be true or false")
			}
			cluster = vs[0] == "true"
		default:
			if strings.IndexFunc(name, func(r rune) bool {
				return !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
			}) >= 0 {
				// Not a parameter name but, most likely, a password's tail after an unescaped "?": never echo it.
				return false, errors.New("the query holds something other than addr= and cluster= (a password with ? / # must be percent-encoded: %3F %2F %23)" + urlExample)
			}
			return false, fmt.Errorf("unknown query parameter %q: only addr=host[:port] (another cluster seed or sentinel) and cluster=true are read", name)
		}
	}
	return cluster, nil
}

// parseSeeds reads the bare form: comma-separated host:port.
func parseSeeds(v string) ([]string, error) {
	parts := strings.Split(v, ",")
	addrs := make([]string, 0, len(parts))
	for _, a := range parts {
		a, err := checkAddr(strings.TrimSpace(a))
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// checkAddr validates host:port (the port from 1 to 65535) and returns it.
func checkAddr(a string) (string, error) {
	host, ps, err := net.SplitHostPort(a)
	if err != nil || host == "" || strings.ContainsAny(host, "@/?#, \t") {
		return "", fmt.Errorf("%q is not host:port: write a redis:// or rediss:// URL, or comma-separated host:port addresses", redactAt(a))
	}
	if n, err := strconv.Atoi(ps); err != nil || n < 1 || n > 65535 || !isDigits(ps) {
		return "", fmt.Errorf("%q: the port must be a number from 1 to 65535", redactAt(a))
	}
	return a, nil
}

// redactAt hides anything up to an "@" (credentials written where an address belongs).
func redactAt(a string) string {
	if i := strings.LastIndex(a, "@"); i >= 0 {
		return "***" + a[i:]
	}
	return a
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// String describes t for the start-up log: the kind and the addresses, never the password.
func (t Target) String() string {
	if t.Kind == None {
		return "none"
	}
	s := t.Kind.String() + " " + strings.Join(t.Addrs, ",")
	if t.MasterName != "" {
		s += " master " + t.MasterName
	}
	if t.TLS {
		s += " tls"
	}
	if t.Username != "" {
		s += " user " + t.Username
	}
	return s
}

// The client's deadlines: a slow Redis must cost a request at most one of them before the
// breaker opens.
const (
	DialTimeout = 500 * time.Millisecond
	CallTimeout = 250 * time.Millisecond // read and write
	PoolTimeout = 300 * time.Millisecond
)

// Client returns the client for t (nil for None). Nothing is retried, neither commands nor dials
// nor cluster redirects: a dead Redis fails a call at once, a stalled one after one deadline, and
// a call whose outcome is unknown (a SET NX that may have run) is never sent twice behind the
// caller's back; the breaker decides when to try again. roots verifies the servers' certificates
// for rediss:// (nil: the system's roots). Each node's certificate is checked against the
// address the client dials it at (a cluster's nodes and a Sentinel's primary are dialled at the
// addresses Redis announces).
func (t Target) Client(roots *x509.CertPool) redis.UniversalClient {
	var tc *tls.Config
	if t.TLS {
		tc = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	}
	const (
		// go-redis reads MaxRetries -1 as "none" (0 as 3), but DialerRetries is the number of
		// dial attempts and reads 0 or less as 5 (100 ms apart): 1 is a single dial.
		retries = -1
		dials   = 1
	)
	switch t.Kind {
	case Single:
		return redis.NewClient(&redis.Options{
			Addr: t.Addrs[0], Username: t.Username, Password: t.Password, DB: t.DB, TLSConfig: tc,
			DialTimeout: DialTimeout, ReadTimeout: CallTimeout, WriteTimeout: CallTimeout, PoolTimeout: PoolTimeout,
			MaxRetries: retries, DialerRetries: dials, ContextTimeoutEnabled: true,
		})
	case Cluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: t.Addrs, Username: t.Username, Password: t.Password, TLSConfig: tc,
			DialTimeout: DialTimeout, ReadTimeout: CallTimeout, WriteTimeout: CallTimeout, PoolTimeout: PoolTimeout,
			MaxRetries: retries, DialerRetries: dials, ContextTimeoutEnabled: true,
			// MaxRedirects -1 turns off the retries on other nodes too. A MOVED/ASK answer
			// (resharding, failover) then fails its one call and reloads the slot map; the map
			// is also reloaded every 5 s of traffic (instead of 60 s), so a failed-over master
			// is not dialled for long.
			MaxRedirects: -1, ClusterStateReloadInterval: 5 * time.Second,
		})
	case Sentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: t.MasterName, SentinelAddrs: t.Addrs, SentinelPassword: t.SentinelPassword,
			Username: t.Username, Password: t.Password, DB: t.DB, TLSConfig: tc,
			DialTimeout: DialTimeout, ReadTimeout: CallTimeout, WriteTimeout: CallTimeout, PoolTimeout: PoolTimeout,
			MaxRetries: retries, DialerRetries: dials, ContextTimeoutEnabled: true,
		})
	}
	return nil
}
