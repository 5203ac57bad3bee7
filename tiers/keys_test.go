package tiers

import (
	"slices"
	"testing"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

// lexAfter is the exclusive upper bound of the keys that start with a prefix, whatever its last
// bytes: "[prefix\xff" missed a key whose byte after the prefix is 0xff (security review).
func TestKeysWithAPrefixIncludeThoseWhoseNextByteIs0xFF(t *testing.T) {
	for in, want := range map[string]string{"/news": "(/newt", "/a\xff": "(/b", "\xff\xff": "+", "": "+"} {
		if got := lexAfter(in); got != want {
			t.Errorf("lexAfter(%q) = %q, want %q", in, got, want)
		}
	}
	s := newStore(t, redistest.Start(t).Connect(t))
	for _, k := range []string{"/news", "/news/a", "/news\xffz", "/newt", "/new"} {
		if err := s.Set(t.Context(), testEntry(k, "b")); err != nil {
			t.Fatal(err)
		}
	}
	keys, more, err := s.KeysWithPrefix(t.Context(), "/news", "", 100)
	if want := []string{"/news", "/news/a", "/news\xffz"}; err != nil || more || !slices.Equal(keys, want) {
		t.Errorf("KeysWithPrefix(/news) = %q, %v, %v; want %q", keys, more, err, want)
	}
}
