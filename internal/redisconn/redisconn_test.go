package redisconn

import (
	"slices"
	"strings"
	"testing"
)

func TestParseReadsEveryForm(t *testing.T) {
	tests := []struct {
		in, master string
		want       Target
	}{
		{"", "", Target{}},
		{"h:6379", "", Target{Kind: Single, Addrs: []string{"h:6379"}}},
		{"redis://h", "", Target{Kind: Single, Addrs: []string{"h:6379"}}},
		{"rediss://u:p%40ss@h:6380/3", "", Target{Kind: Single, Addrs: []string{"h:6380"}, Username: "u", Password: "p@ss", DB: 3, TLS: true}},
		{"redis://:pw@[::1]:7000/0", "", Target{Kind: Single, Addrs: []string{"[::1]:7000"}, Password: "pw"}},
		{"redis://S3cret@h", "", Target{Kind: Single, Addrs: []string{"h:6379"}, Password: "S3cret"}}, // go-redis: a lone userinfo is the password
		{"a:7000, b:7001", "", Target{Kind: Cluster, Addrs: []string{"a:7000", "b:7001"}}},
		{"redis://u:p@h1:6379?addr=h2:6380&addr=h3", "", Target{Kind: Cluster, Addrs: []string{"h1:6379", "h2:6380", "h3:6379"}, Username: "u", Password: "p"}},
		{"rediss://cfg.example:6379?cluster=true", "", Target{Kind: Cluster, Addrs: []string{"cfg.example:6379"}, TLS: true}},
		{"s1:26379,s2:26380", "mymaster", Target{Kind: Sentinel, Addrs: []string{"s1:26379", "s2:26380"}, MasterName: "mymaster"}},
		{"redis://u:p@s1?addr=s2", "mymaster", Target{Kind: Sentinel, Addrs: []string{"s1:26379", "s2:26379"}, Username: "u", Password: "p", MasterName: "mymaster"}},
		{"redis://s1/2", "m", Target{Kind: Sentinel, Addrs: []string{"s1:26379"}, DB: 2, MasterName: "m"}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, tt.master)
		if err != nil {
			t.Errorf("Parse(%q, %q): %v", tt.in, tt.master, err)
			continue
		}
		// The query's addresses come in map order: compare them as a set after the URL's host.
		if len(got.Addrs) > 1 {
			slices.Sort(got.Addrs[1:])
		}
		if got.Kind != tt.want.Kind || !slices.Equal(got.Addrs, tt.want.Addrs) || got.Username != tt.want.Username ||
			got.Password != tt.want.Password || got.DB != tt.want.DB || got.TLS != tt.want.TLS || got.MasterName != tt.want.MasterName {
			t.Errorf("Parse(%q, %q) = %+v, want %+v", tt.in, tt.master, got, tt.want)
		}
	}
}

func TestParseRefusesWhatItCannotReadWithoutShowingThePassword(t *testing.T) {
	tests := []struct{ in, master, says string }{
		{"http://h:6379", "", "scheme"},
		{"redis://", "", "host"},
		{"redis://h/zero", "", "database"},
		{"redis://h:0", "", "port"},
		{"redis://u:secretpw@h?dial_timeout=3", "", "unknown query parameter"},
		{"redis://u:secretpw@h?addr=h2:99999", "", "port"},
		{"redis://u:secretpw@h?addr=u:secretpw@h2:1", "", "host:port"},
		{"redis://u:secretpw@h/1?addr=h2", "", "only database 0"},
		{"redis://h?cluster=yes", "", "true or false"},
		{"redis://h?cluster=true", "m", "exclude each other"},
		{"h", "", "host:port"},
		{"a:1,", "", "host:port"},
		{"", "m", "SWR_REDIS_URL is empty"},
		{"h:1", "my master", "white space"},
		{"redis://u:secretpw@h#x", "", "fragment"},
		{"redis://swr:1234?secretpw@redis:6379/0", "", "percent-encoded"}, // an unescaped ? in the password
		{"redis://swr:ab?secretpw@redis:6379/0", "", "not a URL"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in, tt.master)
		if err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("Parse(%q, %q) = %v, want an error saying %q", tt.in, tt.master, err, tt.says)
			continue
		}
		if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("Parse(%q): the error shows the password: %v", tt.in, err)
		}
	}
}

func TestATargetDescribesItselfWithoutThePassword(t *testing.T) {
	tg, err := Parse("rediss://swr:secretpw@h1:6379?addr=h2:6379", "")
	if err != nil {
		t.Fatal(err)
	}
	s := tg.String()
	if strings.Contains(s, "secretpw") || !strings.Contains(s, "cluster") || !strings.Contains(s, "h2:6379") || !strings.Contains(s, "tls") {
		t.Errorf("String() = %q, want the kind, the addresses and tls, never the password", s)
	}
	if c := tg.Client(nil); c == nil {
		t.Error("Client() = nil for a cluster")
	} else {
		c.Close()
	}
	if c := (Target{}).Client(nil); c != nil {
		t.Error("Client() of no target is not nil")
	}
}

// FuzzParse: whatever SWR_REDIS_URL and SWR_REDIS_MASTER_NAME hold, Parse never panics, an
// error never shows the URL's password, and what it accepts names at least one valid address.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "h:6379", "redis://u:p@h1?addr=h2:1&addr=h3", "rediss://h?cluster=true", "a:1,b:2", "redis://[::1]:1/2"} {
		f.Add(s, "")
		f.Add(s, "m")
	}
	f.Fuzz(func(t *testing.T, v, master string) {
		tg, err := Parse(v, master)
		if err != nil {
			if i := strings.Index(v, "://"); i >= 0 {
				if at := strings.LastIndex(v, "@"); at > i {
					if _, pw, ok := strings.Cut(v[i+3:at], ":"); ok && len(pw) >= 6 && strings.Contains(err.Error(), pw) {
						t.Fatalf("Parse(%q) error shows the password: %v", v, err)
					}
				}
			}
			return
		}
		if v == "" {
			if tg.Kind != None {
				t.Fatalf("Parse(\"\") = %v", tg)
			}
			return
		}
		if len(tg.Addrs) == 0 || tg.Kind == None {
			t.Fatalf("Parse(%q) = %+v: accepted without an address", v, tg)
		}
		for _, a := range tg.Addrs {
			if _, err := checkAddr(a); err != nil {
				t.Fatalf("Parse(%q) accepted %q: %v", v, a, err)
			}
		}
	})
}
