package config

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

var durationTests = []struct {
	in   string
	want time.Duration
	ok   bool
}{
	{"0", 0, true},
	{"90", 90 * time.Second, true},
	{"1.5", 1500 * time.Millisecond, true},
	{".5", 500 * time.Millisecond, true},
	{"5.", 5 * time.Second, true},
	{"0.0000000019", 1, true}, // below a nanosecond is dropped
	{" 90s ", 90 * time.Second, true},
	{"5m", 5 * time.Minute, true},
	{"1h30m", 90 * time.Minute, true},
	{"+5s", 5 * time.Second, true},
	{"250ms", 250 * time.Millisecond, true},
	{"9223372036", 9223372036 * time.Second, true},
	{"9223372037", 0, false}, // overflow
	{"2562048h", 0, false},   // overflow
	{"99999999999999999999999999", 0, false},
	{"-1", 0, false},
	{"-5s", 0, false},
	{"", 0, false},
	{"ten", 0, false},
	{"1d", 0, false},
	{"1e3", 0, false},
	{"1.2.3", 0, false},
	{".", 0, false},
	{"5 s", 0, false},
	{"0x10", 0, false},
	{"NaN", 0, false},
	{"Inf", 0, false},
	{strings.Repeat("9", 100), 0, false},
}

func TestParseDuration(t *testing.T) {
	for _, tt := range durationTests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tt := range sizeTests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseBool(t *testing.T) {
	tests := []struct {
		in       string
		want, ok bool
	}{
		{"1", true, true}, {"true", true, true}, {"TRUE", true, true}, {"Yes", true, true}, {" on ", true, true},
		{"0", false, true}, {"false", false, true}, {"no", false, true}, {"OFF", false, true},
		{"", false, false}, {"2", false, false}, {"t", false, false}, {"enabled", false, false},
	}
	for _, tt := range tests {
		got, err := ParseBool(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseBool(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, tt := range durationTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		d, err := ParseDuration(in) // must not panic
		if err == nil && d < 0 {
			t.Errorf("ParseDuration(%q) = %v, want ≥ 0", in, d)
		}
		if err != nil && d != 0 {
			t.Errorf("ParseDuration(%q) = %v with error %v, want 0", in, d, err)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, tt := range sizeTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, err := ParseSize(in) // must not panic
		if err == nil && n < 0 {
			t.Errorf("ParseSize(%q) = %d, want ≥ 0", in, n)
		}
		if err != nil && n != 0 {
			t.Errorf("ParseSize(%q) = %d with error %v, want 0", in, n, err)
		}
	})
}

func TestLogLevelNamesAreCaseInsensitive(t *testing.T) {
	tests := map[string]slog.Level{"debug": slog.LevelDebug, "Info": slog.LevelInfo, "WARN": slog.LevelWarn, "error": slog.LevelError}
	for in, want := range tests {
		c := mustLoad(t, map[string]string{"SWR_UPSTREAM": "http://o"}, "--log-level", in)
		if c.LogLevel != want {
			t.Errorf("--log-level %s: LogLevel = %v, want %v", in, c.LogLevel, want)
		}
	}
}

var sizeTests = []struct {
	in   string
	want int64
	ok   bool
}{
	{"0", 0, true},
	{"1048576", 1 << 20, true},
	{"100B", 100, true},
	{"100 b", 100, true},
	{"512KiB", 512 << 10, true},
	{"512k", 512 << 10, true},
	{"512KB", 512 << 10, true},
	{"1.5MiB", 3 << 19, true},
	{"10 MiB", 10 << 20, true},
	{"8mib", 8 << 20, true},
	{"2M", 2 << 20, true},
	{"256MB", 256 << 20, true},
	{"1GiB", 1 << 30, true},
	{"1g", 1 << 30, true},
	{"0.5GB", 1 << 29, true},
	{"1.0000001KiB", 1024, true}, // rounded down to whole bytes
	{".5KiB", 512, true},
	{"0.000000000931322574615478515625GiB", 1, true}, // exactly 1 byte: exact arithmetic
	{"8589934591GiB", 8589934591 << 30, true},
	{"9223372036854775807", 1<<63 - 1, true},
	{"9223372036854775808", 0, false}, // overflow
	{"8589934592GiB", 0, false},       // overflow
	{"99999999999999999999999TB", 0, false},
	{"-1", 0, false},
	{"-1MiB", 0, false},
	{"1TB", 0, false},
	{"1TiB", 0, false},
	{"1.5", 0, false}, // a fraction of a byte
	{"1.5B", 0, false},
	{"", 0, false},
	{"MiB", 0, false},
	{"lots", 0, false},
	{"1 2", 0, false},
	{"1..5MiB", 0, false},
	{"1e6", 0, false},
	{"0x100", 0, false},
	{"1_000", 0, false},
	{strings.Repeat("1", 100), 0, false},
}
