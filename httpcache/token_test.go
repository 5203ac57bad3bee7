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
