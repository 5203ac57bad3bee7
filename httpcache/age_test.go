package httpcache

import (
	"strings"
	"testing"
	"time"
)

// TestParseAge pins RFC 9111 §5.1: the first member of a list-based Age is used, the rest
// discarded; an invalid value is ignored.
func TestParseAge(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  time.Duration
		ok    bool
	}{
		{"a non-negative integer", []string{"30"}, 30 * time.Second, true},
		{"zero", []string{"0"}, 0, true},
		{"white space around it is OWS", []string{" 30\t"}, 30 * time.Second, true},
		{"RFC 9111 §5.1: a list uses its first member", []string{"7200, 0"}, 2 * time.Hour, true},
		{"RFC 9111 §5.1: the first line's first member wins over later lines", []string{"5", "600"}, 5 * time.Second, true},
		{"RFC 9111 §5.1: an invalid first member invalidates the field", []string{"1200a, 5"}, 0, false},
		{"trailing letters are invalid", []string{"1200a"}, 0, false},
		{"a negative number is invalid", []string{"-5"}, 0, false},
		{"a sign is invalid", []string{"+5"}, 0, false},
		{"a fraction is invalid", []string{"1.5"}, 0, false},
		{"a quoted number is invalid", []string{`"30"`}, 0, false},
		{"an empty value is invalid", []string{""}, 0, false},
		{"an empty first member is invalid", []string{", 30"}, 0, false},
		{"no field", nil, 0, false},
		{"RFC 9111 §1.2.2: a huge value is 2^31 s", []string{"99999999999999999999999"}, maxDelta, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseAge(tt.lines)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseAge(%q) = %v, %v; want %v, %v", tt.lines, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseAge feeds ParseAge origin bytes (lines split on "\n"): it never panics, stays within
// [0, 2^31 s], and a valid result means the first member was all digits (RFC 9111 §5.1).
func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"30", "7200, 0", "1200a", "5\n600", "", "-1", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines := strings.Split(s, "\n")
		got, ok := ParseAge(lines)
		if got < 0 || got > maxDelta {
			t.Fatalf("ParseAge(%q) = %v, out of [0, 2^31 s]", lines, got)
		}
		first, _, _ := strings.Cut(lines[0], ",")
		first = trimOWS(first)
		if ok != (first != "" && strings.Trim(first, "0123456789") == "") {
			t.Fatalf("ParseAge(%q) ok = %v for first member %q", lines, ok, first)
		}
	})
}

func TestParseAgeDoesNotAllocate(t *testing.T) {
	lines := []string{"7200, 0"}
	if n := testing.AllocsPerRun(100, func() { ParseAge(lines) }); n != 0 {
		t.Errorf("ParseAge allocates %v times", n)
	}
}
