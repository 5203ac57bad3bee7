package httpcache

import (
	"strings"
	"testing"
)

// TestVaryValueNormalisesNegotiationFields pins the RFC 9111 §4.1 normalisation: values that
// differ only in optional white space, empty list members or the case of case-insensitive
// parts select the same variant.
func TestVaryValueNormalisesNegotiationFields(t *testing.T) {
	tests := []struct{ name, field, in, want string }{
		{"RFC 9110 §5.6.1: OWS around members goes", "Accept-Language", " en-US , en ;q=0.5 ", "en-us,en;q=0.5"},
		{"RFC 9110 §5.6.1: empty members go", "Accept-Language", "en,, fr,", "en,fr"},
		{"RFC 4647: language tags are case-insensitive", "Accept-Language", "EN-us", "en-us"},
		{"order is kept (q-values carry the meaning)", "Accept-Language", "fr,en", "fr,en"},
		{"RFC 9110 §12.5.2: charsets are case-insensitive", "Accept-Charset", "UTF-8 , ISO-8859-1;Q=0.5", "utf-8,iso-8859-1;q=0.5"},
		{"RFC 9110 §8.3.1: media types and parameter names are case-insensitive", "Accept",
			"Text/HTML ; Level=1, application/JSON;Q=0.9", "text/html;level=1,application/json;q=0.9"},
		{"Accept parameter values keep their case", "Accept", "text/plain;format=Flowed", "text/plain;format=Flowed"},
		{"a quoted-string is only trimmed", "Accept", ` text/plain;x="A, B" `, `text/plain;x="A, B"`},
		{"other fields are only trimmed", "User-Agent", " Mozilla/5.0 (X11; Linux) ", "Mozilla/5.0 (X11; Linux)"},
		{"an empty value stays empty", "Accept", "  ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VaryValue(tt.field, tt.in); got != tt.want {
				t.Errorf("VaryValue(%q, %q) = %q, want %q", tt.field, tt.in, got, tt.want)
			}
		})
	}
}

var sinkVary string

// TestVaryValueDoesNotAllocateForNormalValues: what browsers send is already in normal form, and
// VaryValue runs on the hit path for every Vary'd field.
func TestVaryValueDoesNotAllocateForNormalValues(t *testing.T) {
	for _, tt := range []struct{ field, v string }{
		{"Accept-Language", "en-us,en;q=0.9,fr;q=0.8"},
		{"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		{"Accept-Charset", " utf-8 "},
		{"User-Agent", "Mozilla/5.0"},
	} {
		if n := testing.AllocsPerRun(100, func() { sinkVary = VaryValue(tt.field, tt.v) }); n != 0 {
			t.Errorf("VaryValue(%q, %q) allocates %v times", tt.field, tt.v, n)
		}
	}
}

// FuzzVaryValue feeds VaryValue client bytes: it never panics, and its normal form is a fixed
// point (RFC 9111 §4.1: two requests match when their normalised values do, so normalising
// again must not split them apart).
func FuzzVaryValue(f *testing.F) {
	for _, s := range []string{" en-US , en ;q=0.5 ", "Text/HTML ; Level=1,,", `text/plain;x="A, B"`, "gzip, br"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, name := range []string{"Accept", "Accept-Language", "Accept-Charset", "Accept-Encoding", "User-Agent", "Cookie"} {
			once := VaryValue(name, v)
			if name != "Cookie" && VaryValue(name, once) != once {
				t.Fatalf("VaryValue(%q, %q) = %q, but normalising that gives %q", name, v, once, VaryValue(name, once))
			}
		}
	})
}

// TestVaryValueDoesNotMergeAValueWithAnEmptyMemberAndParameters: "de, ;fr" names only "de" to
// the origin (the second member is empty, ";fr" a parameter of nothing), so it must not share
// the variant of "de,fr" (security review: a client could fill the French visitors' variant).
func TestVaryValueDoesNotMergeAValueWithAnEmptyMemberAndParameters(t *testing.T) {
	for _, v := range []string{"de, ;fr", "text/html, ;q=0"} {
		name := "Accept-Language"
		if strings.HasPrefix(v, "text/") {
			name = "Accept"
		}
		got := VaryValue(name, v)
		if got == VaryValue(name, strings.ReplaceAll(v, " ;", "")) {
			t.Errorf("VaryValue(%s, %q) = %q, the same as without the empty member", name, v, got)
		}
	}
	if got := VaryValue("Accept-Language", "de, , fr"); got != "de,fr" {
		t.Errorf(`VaryValue("de, , fr") = %q, want "de,fr" (an empty member is nothing)`, got)
	}
}
