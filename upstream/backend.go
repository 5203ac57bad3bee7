package upstream

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
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
