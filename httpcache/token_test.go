package httpcache

import (
	"strings"
	"testing"
)

func TestFramingFieldsAreTheConnectionFieldsContentLengthAndHost(t *testing.T) {
	for _, name := range append([]string{"Content-Length", "Host"}, ConnectionFields...) {
		for _, spelled := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
			if !FramingField(spelled) {
				t.Errorf("FramingField(%q) = false", spelled)
			}
		}
	}
	// Proxy authentication is hop-by-hop (upstream removes it) but frames nothing.
	for _, name := range []string{"Proxy-Authorization", "Proxy-Authenticate", "X-Region", "Content-Type", "Connectionx", ""} {
		if FramingField(name) {
			t.Errorf("FramingField(%q) = true", name)
		}
	}
}

func TestEqualFoldASCIIFoldsASCIILettersOnly(t *testing.T) {
	tests := []struct {
		s, lower string
		want     bool
	}{
		{"No-Cache", "no-cache", true},
		{"no-cache", "no-cache", true},
		{"no-cachf", "no-cache", false},
		{"no-cach", "no-cache", false},
		{"no-ſtore", "no-store", false}, // 'ſ' (U+017F) folds to 's' in strings.EqualFold, not here
	}
	for _, tt := range tests {
		if got := EqualFoldASCII(tt.s, tt.lower); got != tt.want {
			t.Errorf("EqualFoldASCII(%q, %q) = %v, want %v", tt.s, tt.lower, got, tt.want)
		}
	}
}

func TestTokensAndFieldValues(t *testing.T) {
	for _, s := range []string{"X-Region", "a", "!#$%&'*+-.^_`|~09"} {
		if !IsToken(s) {
			t.Errorf("IsToken(%q) = false", s)
		}
	}
	for _, s := range []string{"", "X Region", "X:Region", "é", "a\x00"} {
		if IsToken(s) {
			t.Errorf("IsToken(%q) = true", s)
		}
	}
	if !IsFieldValue("a\tb c") || IsFieldValue("a\r\nX-Injected: 1") || IsFieldValue("a\x7f") {
		t.Error("IsFieldValue allows a control character other than tab, or refuses tab")
	}
}
