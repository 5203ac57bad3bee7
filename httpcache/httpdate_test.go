package httpcache

import (
	"net/http"
	"testing"
	"time"
)

// TestParseHTTPDate pins RFC 9110 §5.6.7: the three formats with their exact grammar, nothing else.
func TestParseHTTPDate(t *testing.T) {
	ref := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Time // zero: not an HTTP-date
	}{
		{"IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", want},
		{"rfc850-date", "Sunday, 06-Nov-94 08:49:37 GMT", want},
		{"asctime-date with a space-padded day", "Sun Nov  6 08:49:37 1994", want},
		{"asctime-date with a two-digit day", "Sun Nov 16 08:49:37 1994", want.AddDate(0, 0, 10)},
		{"a leap second is the next minute", "Sun, 06 Nov 1994 08:49:60 GMT", want.Add(23 * time.Second)},
		{"the day-name is not checked against the date", "Mon, 06 Nov 1994 08:49:37 GMT", want},
		{"RFC 9110 §5.6.7: an rfc850 year over 50 years ahead is the past century", "Thursday, 01-Jan-76 00:00:00 GMT",
			time.Date(1976, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"RFC 9110 §5.6.7: an rfc850 year within 50 years ahead is the future", "Monday, 01-Jan-74 00:00:00 GMT",
			time.Date(2074, 1, 1, 0, 0, 0, 0, time.UTC)},

		{"a one-digit hour", "Sun, 06 Nov 1994 8:49:37 GMT", time.Time{}},
		{"a one-digit day in IMF-fixdate", "Sun, 6 Nov 1994 08:49:37 GMT", time.Time{}},
		{"a doubled space", "Sun,  06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"asctime with a zero-padded day", "Sun Nov 06 08:49:37 1994", want},
		{"asctime with a doubled space before a two-digit day", "Sun Nov  16 08:49:37 1994", time.Time{}},
		{"a zone other than GMT", "Sun, 06 Nov 1994 08:49:37 UTC", time.Time{}},
		{"gmt in lower case", "Sun, 06 Nov 1994 08:49:37 gmt", time.Time{}},
		{"a numeric zone", "Sun, 06 Nov 1994 08:49:37 +0000", time.Time{}},
		{"a lower-case month", "Sun, 06 nov 1994 08:49:37 GMT", time.Time{}},
		{"a lower-case day-name", "sun, 06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"a short day-name in rfc850-date", "Sun, 06-Nov-94 08:49:37 GMT", time.Time{}},
		{"a four-digit year in rfc850-date", "Sunday, 06-Nov-1994 08:49:37 GMT", time.Time{}},
		{"a day that does not exist", "Thu, 30 Feb 1995 08:49:37 GMT", time.Time{}},
		{"hour 24", "Sun, 06 Nov 1994 24:00:00 GMT", time.Time{}},
		{"minute 60", "Sun, 06 Nov 1994 08:60:00 GMT", time.Time{}},
		{"day 00", "Sun, 00 Nov 1994 08:49:37 GMT", time.Time{}},
		{"asctime day 0", "Sun Nov  0 08:49:37 1994", time.Time{}},
		{"leading white space", " Sun, 06 Nov 1994 08:49:37 GMT", time.Time{}},
		{"trailing white space", "Sun, 06 Nov 1994 08:49:37 GMT ", time.Time{}},
		{"a sign in a number", "Sun, +6 Nov 1994 08:49:37 GMT", time.Time{}},
		{"a number", "0", time.Time{}},
		{"empty", "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseHTTPDate(tt.in, ref)
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("parseHTTPDate(%q) = %v, %v; want %v", tt.in, got, ok, tt.want)
			}
		})
	}
}

// FuzzParseHTTPDate feeds parseHTTPDate origin bytes: it never panics, gives whole seconds in
// UTC, and an accepted IMF-fixdate (RFC 9110 §5.6.7: the one format senders generate) formats
// back to itself but for the day-name, which is not checked, and a leap second.
func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 8:49:37 GMT", "Thu, 30 Feb 1995 08:49:37 GMT"} {
		f.Add(s)
	}
	ref := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseHTTPDate(s, ref)
		if !ok {
			return
		}
		if got.Location() != time.UTC || got.Nanosecond() != 0 {
			t.Fatalf("parseHTTPDate(%q) = %v, not whole seconds in UTC", s, got)
		}
		if len(s) == len(http.TimeFormat) && s[3] == ',' && s[23:25] != "60" {
			if back := got.Format(http.TimeFormat); back[3:] != s[3:] {
				t.Fatalf("parseHTTPDate(%q) = %v, which formats as %q", s, got, back)
			}
		}
	})
}

func TestStrongLastModifiedNeedsADateASecondLaterRFC9110Section8_8_2_2(t *testing.T) {
	const lm = "Mon, 01 Jan 2024 00:00:00 GMT"
	for _, tt := range []struct {
		lastModified, date string
		want               bool
	}{
		{lm, "Mon, 01 Jan 2024 00:00:01 GMT", true},
		{lm, "Tue, 02 Jan 2024 00:00:00 GMT", true},
		{lm, lm, false},
		{lm, "Sun, 31 Dec 2023 23:59:59 GMT", false}, // dated before it was modified
		{lm, "", false},
		{"yesterday", "Tue, 02 Jan 2024 00:00:00 GMT", false},
	} {
		if got := StrongLastModified(tt.lastModified, tt.date); got != tt.want {
			t.Errorf("StrongLastModified(%q, %q) = %v, want %v", tt.lastModified, tt.date, got, tt.want)
		}
	}
}
