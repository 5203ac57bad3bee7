package httpcache

import (
	"strings"
	"testing"
)

var hostTests = []struct {
	in, defaultPort, want string
	ok                    bool
}{
	{"example.com", "80", "example.com", true},
	{"Example.COM", "80", "example.com", true},
	{"example.com.", "80", "example.com", true},
	{"example.com:80", "80", "example.com", true},
	{"example.com:8080", "80", "example.com:8080", true},
	{"example.com:443", "80", "example.com:443", true},
	{"example.com:", "80", "example.com", true},
	{"127.0.0.1:9000", "", "127.0.0.1:9000", true},
	{"[2001:DB8::1]:443", "443", "[2001:db8::1]", true},
	{"[::1]", "80", "[::1]", true},
	{"under_score.internal", "80", "under_score.internal", true},
	// RFC 9110 §7.2 / the hardening issue: anything that could be read two ways is refused.
	{"", "80", "", false},
	{"victim.com/evil", "80", "", false},
	{"victim.com evil", "80", "", false},
	{"victim.com\tevil", "80", "", false},
	{"user@victim.com", "80", "", false},
	{"victim.com%2fevil", "80", "", false},
	{"victim.com:80:80", "80", "", false},
	{"victim.com:99999", "80", "", false},
	{"victim.com:0", "80", "", false},
	{"victim.com:8o", "80", "", false},
	{"victim.com:123456", "80", "", false},
	{".victim.com", "80", "", false},
	{"victim..com", "80", "", false},
	{".", "80", "", false},
	{"[::1", "80", "", false},
	{"[::1]x", "80", "", false},
	{"[fe80::1%25eth0]", "80", "", false},
	{"[v1.x]", "80", "", false},
	{"[]", "80", "", false},
	{"a\x00b", "80", "", false},
	{"é.example", "80", "", false},
	{strings.Repeat("a", 256), "80", "", false},
}

func TestAppendHostAcceptsOnlyHostsAndNormalisesThem(t *testing.T) {
	for _, tt := range hostTests {
		got, ok := AppendHost([]byte("x"), []byte(tt.in), tt.defaultPort)
		if ok != tt.ok || (ok && string(got) != "x"+tt.want) || (!ok && string(got) != "x") {
			t.Errorf("AppendHost(%q, %q) = %q, %v; want %q, %v", tt.in, tt.defaultPort, got, ok, "x"+tt.want, tt.ok)
		}
	}
}

func TestAppendHostDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 64)
	host := []byte("API.Example.com:8080")
	if n := testing.AllocsPerRun(100, func() { AppendHost(buf[:0], host, "80") }); n != 0 {
		t.Errorf("AppendHost allocates %v times", n)
	}
}

// FuzzAppendHost: whatever the client sends, an accepted host has no byte that could split a key
// or a URL, and normalising is idempotent.
func FuzzAppendHost(f *testing.F) {
	for _, tt := range hostTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := AppendHost(nil, []byte(in), "80")
		if !ok {
			return
		}
		if strings.ContainsAny(string(got), " /@%?#\\\t\r\n\x00") || strings.IndexByte(string(got), KeySeparator) >= 0 {
			t.Fatalf("AppendHost(%q) accepted %q", in, got)
		}
		again, ok := AppendHost(nil, got, "80")
		if !ok || string(again) != string(got) {
			t.Fatalf("AppendHost(AppendHost(%q)) = %q, %v; want %q", in, again, ok, got)
		}
	})
}

func TestKeysWithAHostSplitOneWayOnly(t *testing.T) {
	// Host "victim.com/evil" + GET /x and Host victim.com + GET /evil/x must not share a key; the
	// first host is refused by AppendHost, and keys never collide for hosts it accepts.
	a, b := Key("victim.com", "/evil/x"), Key("victim.com", "/x")
	if a == b {
		t.Fatalf("two requests share key %q", a)
	}
	for _, k := range []struct{ host, uri string }{{"", "/a?b"}, {"a.example", "/b/c"}, {"[::1]:81", "/"}} {
		if h, u := SplitKey(Key(k.host, k.uri)); h != k.host || u != k.uri {
			t.Errorf("SplitKey(Key(%q, %q)) = %q, %q", k.host, k.uri, h, u)
		}
	}
}

func TestVaryValueNeverKeepsCredentialsInClear(t *testing.T) {
	v := VaryValue("Cookie", " session=alice ")
	if strings.Contains(v, "alice") || !strings.HasPrefix(v, credentialDigest) {
		t.Fatalf("VaryValue(Cookie) = %q, want a digest", v)
	}
	if v != VaryValue("Cookie", "session=alice") {
		t.Error("the digest depends on surrounding white space")
	}
	if v == VaryValue("Cookie", "session=bob") || v == VaryValue("Authorization", "session=alice") {
		t.Error("different credentials (or fields) share a digest")
	}
	if VaryValue("Authorization", "") != "" {
		t.Error("an absent credential must stay empty (it selects the anonymous variant)")
	}
	if got := VaryValue("Accept-Encoding", "gzip, br"); got != "br" {
		t.Errorf("VaryValue(Accept-Encoding) = %q, want br", got)
	}
	if got := VaryValue("Accept-Language", "  en, fr "); got != "en,fr" {
		t.Errorf("VaryValue(Accept-Language) = %q", got)
	}
	if !KeyedOnCredentials([]string{"Accept", "Cookie"}) || KeyedOnCredentials([]string{"Accept-Encoding"}) {
		t.Error("KeyedOnCredentials")
	}
	if got := JoinLines("Accept-Language", []string{"en", "fr"}); got != "en, fr" {
		t.Errorf("JoinLines = %q", got)
	}
	if got := JoinLines("Cookie", []string{"a=1", "b=2"}); got != "a=1; b=2" {
		t.Errorf("JoinLines(Cookie) = %q", got)
	}
}

func TestForwardingFieldsAreRecognisedByFamily(t *testing.T) {
	for _, n := range []string{"X-Forwarded-Host", "X_Forwarded_Host", "x-forwarded-scheme", "X-Forwarded", "Forwarded",
		"X-Forwarded-Ssl", "Front-End-Https", "X-Original-Host", "X-Original-Url", "X-Rewrite-Url", "X-Http-Host-Override",
		"X-Http-Method-Override", "X-Method-Override", "X-Host", "X-Real-Ip", "True-Client-Ip", "Cf-Connecting-Ip",
		"Cf-Visitor", "Cloudfront-Forwarded-Proto", "Fastly-Ssl", "X-Arr-Ssl", "Ssl-Offloaded", "Https", "X-Proto",
		"X-Remote-Addr", "X-Client-Ip", "X-Cluster-Client-Ip", "Via", "X-Url-Scheme", "X-Scheme", "Akamai-Origin-Hop"} {
		if !ForwardingField(n) {
			t.Errorf("ForwardingField(%q) = false", n)
		}
	}
	for _, n := range []string{"Accept", "Accept-Language", "User-Agent", "Cookie", "X-Tenant", "Authorization", "X-Requested-With"} {
		if ForwardingField(n) {
			t.Errorf("ForwardingField(%q) = true", n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ForwardingField("X-Forwarded-Host"); IsCredential("Accept-Language") }); n != 0 {
		t.Errorf("ForwardingField/IsCredential allocate %v times", n)
	}
	for _, n := range []string{"X-Api-Key", "X-Auth-Token", "X-Session-Id", "Authorization", "Cookie"} {
		if !IsCredential(n) {
			t.Errorf("IsCredential(%q) = false", n)
		}
	}
	if IsCredential("Accept-Language") || IsCredential("X-Tenant") {
		t.Error("IsCredential of a plain field")
	}
}

func TestReservedMatchesThePrefixInAnyCaseAndNothingElse(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/_swr", true}, {"/_swr/", true}, {"/_swr/keys", true}, {"/_SWR/keys", true}, {"/_sWr/x/y", true},
		{"/_swrx", false}, {"/_swr.json", false}, {"/api/_swr/keys", false}, {"/_sw", false}, {"", false},
		{"/", false}, {"/\x7fswr/", false}, {"/_swR", true}, {"/_sw\x12/", false},
	}
	for _, tt := range tests {
		if got := Reserved([]byte(tt.path)); got != tt.want {
			t.Errorf("Reserved(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Reserved([]byte("/_SWR/keys")) }); n != 0 {
		t.Errorf("Reserved allocates %v times", n)
	}
}
