package httpcache

// maxHost bounds a Host field value: 255 bytes of name (RFC 1035), brackets and a port.
const maxHost = 255 + 2 + 6

// AppendHost validates a Host field value (RFC 9110 §7.2: uri-host [ ":" port ]) and appends its
// normalised form to dst: letters lower-cased, a trailing dot and an empty port dropped, and the
// port dropped when it is defaultPort ("80" or "443"; "" keeps every port). ok is false, and dst
// is returned unchanged, for anything else: an empty value, white space, '/', '@', '%', a
// bad port, a zone or IPvFuture literal. It does not allocate when dst has room.
//
// Accepted hosts are IPv6 literals ("[2001:db8::1]": hex digits, ':' and '.' inside brackets)
// and names made of letters, digits, '-', '_' and '.', with no empty label: DNS names and IPv4
// addresses, and nothing a cache key or a URL built from the host could read two ways.
func AppendHost(dst, host []byte, defaultPort string) (out []byte, ok bool) {
	name, port, ok := splitHost(host)
	if !ok {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, name...)
	for i := start; i < len(dst); i++ {
		if c := dst[i]; 'A' <= c && c <= 'Z' {
			dst[i] = c + 'a' - 'A'
		}
	}
	if len(port) > 0 && string(port) != defaultPort {
		dst = append(dst, ':')
		dst = append(dst, port...)
	}
	return dst, true
}

// ValidHost reports whether AppendHost accepts host, without building its normalised form.
func ValidHost(host []byte) bool {
	_, _, ok := splitHost(host)
	return ok
}

// splitHost validates host (see AppendHost) and returns its name (a trailing dot dropped) and
// its port ("" when none or empty).
func splitHost(host []byte) (name, port []byte, ok bool) {
	if len(host) == 0 || len(host) > maxHost {
		return nil, nil, false
	}
	name = host
	if host[0] == '[' {
		end := indexByte(host, ']')
		if end < 3 {
			return nil, nil, false
		}
		for _, c := range host[1:end] {
			if !(isHexDigit(c) || c == ':' || c == '.') {
				return nil, nil, false
			}
		}
		name = host[:end+1]
		switch rest := host[end+1:]; {
		case len(rest) == 0:
		case rest[0] == ':':
			port = rest[1:]
		default:
			return nil, nil, false
		}
	} else {
		if i := indexByte(host, ':'); i >= 0 {
			name, port = host[:i], host[i+1:]
		}
		if n := len(name); n > 1 && name[n-1] == '.' {
			name = name[:n-1] // "example.com." is "example.com"
		}
		if len(name) == 0 || len(name) > 255 {
			return nil, nil, false
		}
		prev := byte('.')
		for _, c := range name {
			switch {
			case c == '.' && prev == '.':
				return nil, nil, false // an empty label (or a leading dot)
			case c == '.', c == '-', c == '_', '0' <= c && c <= '9', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			default:
				return nil, nil, false
			}
			prev = c
		}
		if prev == '.' {
			return nil, nil, false
		}
	}
	if len(port) > 5 {
		return nil, nil, false
	}
	n := 0
	for _, c := range port {
		if c < '0' || c > '9' {
			return nil, nil, false
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 || len(port) > 0 && n == 0 {
		return nil, nil, false
	}
	return name, port, true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// DefaultPort is the port a Host field may leave out on a connection (AppendHost drops it): 443
// over TLS, else 80.
func DefaultPort(tls bool) string {
	if tls {
		return "443"
	}
	return "80"
}
