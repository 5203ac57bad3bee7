package httpcache

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestParseSFDictionary pins the RFC 8941 §4.2.2 Dictionary grammar CDN-Cache-Control uses
// (RFC 9213 §2.1).
func TestParseSFDictionary(t *testing.T) {
	valid := []struct {
		in   string
		want []sfMember
	}{
		{"", nil},
		{"   ", nil},
		{"max-age=60", []sfMember{{key: "max-age", kind: sfInteger, num: 60}}},
		{"no-store", []sfMember{{key: "no-store", kind: sfBoolean, num: 1}}},
		{"no-store=?0", []sfMember{{key: "no-store", kind: sfBoolean}}},
		{" a=1 ,\tb=-2 ", []sfMember{{key: "a", kind: sfInteger, num: 1}, {key: "b", kind: sfInteger, num: -2}}},
		{`a="x\"y", b=tok/en:1, c=1.25, d=:aGk=:`, []sfMember{{key: "a", kind: sfString, str: `x\"y`},
			{key: "b", kind: sfToken, str: "tok/en:1"}, {key: "c", kind: sfDecimal}, {key: "d", kind: sfBytes}}},
		{"a=(1 2 \"x\");p, b", []sfMember{{key: "a", kind: sfInnerList}, {key: "b", kind: sfBoolean, num: 1}}},
		{"a;p=1;q, b=2;r=?1", []sfMember{{key: "a", kind: sfBoolean, num: 1}, {key: "b", kind: sfInteger, num: 2}}},
		{"a=1, b, a=3", []sfMember{{key: "a", kind: sfInteger, num: 3}, {key: "b", kind: sfBoolean, num: 1}}},
		{"*x=999999999999999", []sfMember{{key: "*x", kind: sfInteger, num: 999999999999999}}},
	}
	for _, tt := range valid {
		got, ok := parseSFDictionary(tt.in)
		if !ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseSFDictionary(%q) = %+v, %v; want %+v", tt.in, got, ok, tt.want)
		}
	}
	invalid := []string{
		"Max-Age=60",         // keys are lower case
		"1a=1",               // a key starts with a letter or *
		"a=1,",               // trailing comma
		"a=1,,b=2",           // empty member
		"a=1 b=2",            // no comma
		"a=",                 // no value
		"a=1a",               // junk after an item
		"a=1000000000000000", // 16 digits
		"a=-",                // a sign alone
		"a=1.",               // no fraction digits
		"a=1.2345",           // four fraction digits
		"a=1234567890123.1",  // 13 integer digits in a decimal
		`a="x`,               // unterminated string
		`a="\x"`,             // bad escape
		"a=\"\u00e9\"",       // non-ASCII in a string
		"a=?2",               // not a boolean
		"a=:a*b:",            // not base64
		"a=(1 2",             // unterminated inner list
		"a=(1,2)",            // comma in an inner list
		"a;P=1",              // parameter key upper case
		"a=1;",               // empty parameter
		"\ta=1",              // leading HTAB is not SP
		"a=@",                // not an item
		"a=\"x\"\x00",        // control character
	}
	for _, in := range invalid {
		if got, ok := parseSFDictionary(in); ok {
			t.Errorf("parseSFDictionary(%q) = %+v, want invalid", in, got)
		}
	}
}

// FuzzParseSFDictionary feeds the Dictionary parser origin bytes (RFC 8941 §4.2.2): it never
// panics; what it accepts holds only visible ASCII, SP and HTAB, has keys of the key grammar, each
// once, and Integers of at most 15 digits; a trailing comma always makes it invalid.
func FuzzParseSFDictionary(f *testing.F) {
	for _, s := range []string{"max-age=60, no-store", `a="x", b=tok, c=1.5;p, d=(1 2), e=:aGk=:, f=?0`, "a=1,", "Max-Age=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dict, ok := parseSFDictionary(s)
		if !ok {
			return
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; (c < 0x20 || c > 0x7e) && c != '\t' {
				t.Fatalf("parseSFDictionary(%q) accepted byte %#x", s, c)
			}
		}
		seen := map[string]bool{}
		for _, m := range dict {
			if seen[m.key] || m.key == "" || strings.Trim(m.key, "abcdefghijklmnopqrstuvwxyz0123456789_-.*") != "" ||
				m.key[0] >= '0' && m.key[0] <= '9' || strings.ContainsAny(m.key[:1], "_-.") {
				t.Fatalf("parseSFDictionary(%q) has key %q", s, m.key)
			}
			seen[m.key] = true
			if m.kind == sfInteger && (m.num > 999999999999999 || m.num < -999999999999999) {
				t.Fatalf("parseSFDictionary(%q) has Integer %d", s, m.num)
			}
		}
		if strings.TrimRight(s, " \t") != "" {
			if _, ok := parseSFDictionary(s + ","); ok {
				t.Fatalf("parseSFDictionary(%q) accepted a trailing comma", s+",")
			}
		}
	})
}

// TestAnSFDictionaryWithTooManyMembersIsInvalid bounds the parser's work on an origin's field
// (security review: 256 KiB of distinct keys cost 2.9 s of CPU per fill).
func TestAnSFDictionaryWithTooManyMembersIsInvalid(t *testing.T) {
	var b strings.Builder
	for i := range sfMaxMembers + 1 {
		fmt.Fprintf(&b, "k%d=1, ", i)
	}
	if _, ok := parseSFDictionary(strings.TrimSuffix(b.String(), ", ")); ok {
		t.Errorf("a dictionary of %d members parsed; want it invalid", sfMaxMembers+1)
	}
	if _, ok := parseSFDictionary("max-age=60, stale-if-error=30"); !ok {
		t.Error("a small dictionary did not parse")
	}
}
