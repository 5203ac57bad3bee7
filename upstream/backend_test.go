package upstream

import (
	"strings"
	"testing"
)

func TestParseBackendNormalisesTheURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://origin", "http://origin"},
		{"http://origin/", "http://origin"},
		{"HTTPS://Origin:8443//", "https://origin:8443"},
		{"http://origin:80/api/", "http://origin/api"},
		{"https://origin:443", "https://origin"},
		{"http://origin/a%2Fb/", "http://origin/a%2Fb"},
		{"http://[::1]:8080/x", "http://[::1]:8080/x"},
		{"http://[::1]:80", "http://[::1]"},
	}
	for _, tt := range tests {
		u, err := ParseBackend(tt.in)
		if err != nil || u.String() != tt.want {
			t.Errorf("ParseBackend(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
		}
	}
}

func TestParseBackendRefusesWhatCannotBeABaseURL(t *testing.T) {
	tests := []struct{ in, says string }{
		{"origin:8080", "scheme"},
		{"ftp://origin", "scheme"},
		{"http://", "host"},
		{"http://user:pw@origin", "credentials"},
		{"http://origin/?a=1", "query"},
		{"http://origin/#x", "fragment"},
		{"http://origin:0", "port"},
		{"http://origin:99999", "port"},
		{"http://[fe80::1%25eth0]:80", "zone"},
		{"http://origin\n.example", "URL"},
		{"", "scheme"},
	}
	for _, tt := range tests {
		u, err := ParseBackend(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("ParseBackend(%q) = %v, %v; want an error about the %s", tt.in, u, err, tt.says)
		}
	}
}

func TestHostPortMakesTheDefaultPortExplicit(t *testing.T) {
	for in, want := range map[string]string{
		"http://origin":       "origin:80",
		"https://origin":      "origin:443",
		"http://origin:8080":  "origin:8080",
		"http://[::1]:9000/x": "[::1]:9000",
	} {
		u, err := ParseBackend(in)
		if err != nil || hostPort(u) != want {
			t.Errorf("hostPort(%s) = %v, %v; want %s", in, hostPort(u), err, want)
		}
	}
}

// FuzzParseBackend: whatever the bytes (an operator's POST /_swr/servers body, SWR_UPSTREAM),
// ParseBackend does not panic, and what it accepts is a plain http(s) base URL that is already
// in its normal form.
func FuzzParseBackend(f *testing.F) {
	for _, s := range []string{"http://origin", "HTTPS://Origin:8443//", "http://[::1]:80/x", "http://a:0",
		"http://user@a", "http://a/?q", "http://a/#f", "http://[fe80::1%25eth0]", "http://a:80/%2F/", "//a", "http:a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ParseBackend(raw)
		if err != nil {
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("ParseBackend(%q) accepted %#v", raw, u)
		}
		s := u.String()
		for i := 0; i < len(s); i++ {
			if s[i] <= ' ' || s[i] == 0x7f {
				t.Fatalf("ParseBackend(%q) = %q: a control character or space", raw, s)
			}
		}
		again, err := ParseBackend(s)
		if err != nil || again.String() != s {
			t.Fatalf("ParseBackend(%q) = %q, which parses again as %v, %v", raw, s, again, err)
		}
	})
}
