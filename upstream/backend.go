package upstream

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ParseBackend validates one origin base URL (an item of SWR_UPSTREAM, or the url of a POST to
// /_swr/servers) and returns it normalised: scheme and host in lower case, the default port
// dropped, no trailing slash on the path (a path is a prefix of every request target). The error
// says what is wrong without repeating the value (the caller names the setting and the value).
func ParseBackend(raw string) (*url.URL, error) {
	const eg = " (e.g. http://origin:8080)"
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("not a URL" + eg)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("the scheme must be http or https" + eg)
	case u.Opaque != "" || u.Hostname() == "":
		return nil, errors.New("the host is missing" + eg)
	case u.User != nil:
		return nil, errors.New("credentials in the URL are not supported")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, errors.New("must not have a query: the client's query is appended to each request")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, errors.New("must not have a fragment")
	case strings.ContainsAny(u.Host, "%"):
		return nil, errors.New("a zone or an escape in the host is not supported")
	}
	port := u.Port()
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, errors.New("the port must be a number from 1 to 65535")
		}
	}
	host := strings.ToLower(u.Hostname())
	if port == defaultPort(u.Scheme) {
		port = ""
	}
	u.Host = host
	if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	}
	// The path is a prefix for every proxied path, which starts with "/".
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u, nil
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// hostPort is u's host and port, the port explicit: what DELETE /_swr/servers/<host>/<port> names
// and what a dial reaches.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// Where a backend came from: the environment's SWR_UPSTREAM, or POST /_swr/servers.
const (
	SourceEnv = "env"
	SourceAPI = "api"
)

// backend is one origin server of the pool with this instance's view of its health. The pool
// replaces its list of backends on every membership change, keeping the *backend of each URL
// that stays, so its state and counters survive; a removed backend's in-flight requests finish
// on it.
type backend struct {
	url    *url.URL
	id     string // url.String(): the backend's identity in the pool and in Redis
	source string
	hash   uint64 // of id, for key_hash

	up       atomic.Bool
	inflight atomic.Int64
	success  atomic.Uint64 // exchanges that got a response below 500
	failed   atomic.Uint64 // exchanges without a response, or with a 5xx
	lat      latencies

	mu           sync.Mutex // guards the fields below
	since        time.Time  // when the state last changed (or the backend joined)
	fails        int        // consecutive failed checks
	trafficFails int        // consecutive failures on traffic, since an answer or a passed check
	passes       int        // consecutive passed checks while down
	check        Check      // the latest health check
}

func newBackend(u *url.URL, source string, now time.Time) *backend {
	b := &backend{url: u, id: u.String(), source: source, since: now}
	b.hash = hashString(b.id)
	b.up.Store(true) // a backend added is up until its checks say otherwise
	return b
}

// Check is the outcome of a backend's latest active health check.
type Check struct {
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"-"`
	Status   int           `json:"status,omitempty"` // 0: no response
	Error    string        `json:"error,omitempty"`
}

// Server is one backend as this instance sees it: the body of GET /_swr/servers.
type Server struct {
	URL      string    `json:"url"`
	State    string    `json:"state"` // "up" or "down"
	Since    time.Time `json:"since"`
	Failures int       `json:"failures"` // consecutive
	InFlight int64     `json:"in_flight"`
	Success  uint64    `json:"success"`
	Failed   uint64    `json:"failed"`
	Latency  Latency   `json:"latency"`
	Source   string    `json:"source"` // "env" or "api"
	// LastCheck is the latest active health check; nil before the first.
	LastCheck *Check `json:"last_check,omitempty"`
	// CheckMillis is how long LastCheck took.
	CheckMillis float64 `json:"last_check_ms,omitempty"`
}

func (b *backend) server(now time.Time) Server {
	b.mu.Lock()
	s := Server{URL: b.id, State: "down", Since: b.since, Failures: max(b.fails, b.trafficFails), Source: b.source}
	if !b.check.At.IsZero() {
		c := b.check
		s.LastCheck, s.CheckMillis = &c, float64(c.Duration.Microseconds())/1000
	}
	b.mu.Unlock()
	if b.up.Load() {
		s.State = "up"
	}
	s.InFlight, s.Success, s.Failed = b.inflight.Load(), b.success.Load(), b.failed.Load()
	s.Latency = b.lat.summary(now)
	return s
}

// hashString is 64-bit FNV-1a: stable across processes and versions, so every instance maps a
// key to the same backend.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is the splitmix64 finaliser: it spreads the combination of a key's and a backend's
// hashes so that rendezvous scores are independent per backend.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
