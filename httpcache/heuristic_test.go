package httpcache

import (
	"net/http"
	"testing"
	"time"
)

func TestSourceSaysWhetherTheLifetimeIsHeuristic(t *testing.T) {
	tests := []struct {
		s         Source
		name      string
		heuristic bool
	}{
		{SourceOrigin, "origin", false},
		{SourceLastModified, "last-modified", true},
		{SourceDefaultTTL, "default-ttl", true},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.name {
			t.Errorf("Source(%d).String() = %q, want %q", tt.s, got, tt.name)
		}
		if got := tt.s.Heuristic(); got != tt.heuristic {
			t.Errorf("%s.Heuristic() = %v, want %v", tt.name, got, tt.heuristic)
		}
	}
}

// The hardening issue: requests with Cookie get no heuristic freshness. A stored copy whose
// lifetime was guessed (and that the origin did not make public) says so, so that a request with
// Cookie revalidates it instead of taking it as fresh.
func TestGuessedLifetimesAreNotForCookies(t *testing.T) {
	lm := map[string][]string{"Date": {now.Format(http.TimeFormat)}, "Last-Modified": {now.Add(-10 * time.Hour).Format(http.TimeFormat)}}
	tests := []struct {
		name    string
		header  http.Header
		d       Defaults
		guessed bool
	}{
		{"Last-Modified heuristic", lm, Defaults{}, true},
		{"SWR_DEFAULT_TTL", http.Header{}, Defaults{TTL: time.Minute}, true},
		{"max-age", http.Header{"Cache-Control": {"max-age=60"}}, Defaults{}, false},
		{"s-maxage", http.Header{"Cache-Control": {"s-maxage=60"}}, Defaults{}, false},
		{"Expires", http.Header{"Expires": {now.Add(time.Hour).Format(http.TimeFormat)}, "Date": {now.Format(http.TimeFormat)}}, Defaults{}, false},
		{"public with the heuristic", http.Header{"Cache-Control": {"public"}, "Date": lm["Date"], "Last-Modified": lm["Last-Modified"]}, Defaults{}, false},
	}
	for _, tt := range tests {
		got := Decide(200, tt.header, Req{}, now, now, tt.d)
		if !got.Store || got.Guessed != tt.guessed {
			t.Errorf("%s: Store %v, Guessed %v; want stored, Guessed %v", tt.name, got.Store, got.Guessed, tt.guessed)
		}
	}
}

// TestAStoredErrorGetsOnlyTheOriginsStaleWindows: negative caching (RFC 9111 §3) stores a 503
// with explicit freshness, but the SWR_STALE_* defaults (RFC 9111 §4.2.4, configuration) are for
// good copies: a stale 503 is not served while revalidating nor in place of a newer error,
// unless the origin asked for it with RFC 5861 directives.
func TestAStoredErrorGetsOnlyTheOriginsStaleWindows(t *testing.T) {
	now := time.Now()
	d := Defaults{StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}
	tests := []struct {
		status       int
		cacheControl string
		swr, sie     time.Duration
	}{
		{503, "max-age=30", 0, 0},
		{503, "max-age=30, stale-while-revalidate=5", 5 * time.Second, 0},
		{502, "max-age=30", 0, 0},
		{200, "max-age=30", time.Minute, time.Hour},
	}
	for _, tt := range tests {
		got := Decide(tt.status, http.Header{"Cache-Control": {tt.cacheControl}}, Req{}, now, now, d)
		if !got.Store || got.StaleWhileRevalidate != tt.swr || got.StaleIfError != tt.sie {
			t.Errorf("%d %q: store %v, windows %v/%v; want stored with %v/%v", tt.status, tt.cacheControl,
				got.Store, got.StaleWhileRevalidate, got.StaleIfError, tt.swr, tt.sie)
		}
	}
}
