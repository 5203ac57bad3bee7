package httpcache

import (
	"testing"
	"time"
)

func dur(d time.Duration) *time.Duration { return &d }

// A policy's ttl, default_ttl and stale windows (README "Policies", "What each action does") against the origin's word.
func TestPolicyOverridesFreshnessButNotProhibitions(t *testing.T) {
	ttl2s := Override{TTL: dur(2 * time.Second)}
	dflt := Override{DefaultTTL: dur(10 * time.Second)}
	windows := Override{StaleWhileRevalidate: dur(5 * time.Second), StaleIfError: dur(0)}
	tests := []struct {
		name   string
		status int
		h      []string
		req    Req
		want   time.Duration // Fresh; -1 = not stored
		source Source
		swr    time.Duration
		sie    time.Duration
	}{
		{"ttl beats max-age", 200, []string{"Cache-Control", "max-age=600"}, Req{Policy: ttl2s}, 2 * time.Second, SourcePolicy, time.Minute, time.Hour},
		{"ttl beats s-maxage and Expires", 200, []string{"Cache-Control", "s-maxage=600", "Expires", ago(-time.Hour)}, Req{Policy: ttl2s}, 2 * time.Second, SourcePolicy, time.Minute, time.Hour},
		{"ttl gives a lifetime to a response without one", 200, nil, Req{Policy: ttl2s}, 2 * time.Second, SourcePolicy, time.Minute, time.Hour},
		{"ttl counts as explicit for a request with Cookie", 200, nil, Req{Cookie: true, Policy: ttl2s}, 2 * time.Second, SourcePolicy, time.Minute, time.Hour},
		{"ttl does not lift no-store", 200, []string{"Cache-Control", "no-store"}, Req{Policy: ttl2s}, -1, 0, 0, 0},
		{"ttl does not lift private", 200, []string{"Cache-Control", "private"}, Req{Policy: ttl2s}, -1, 0, 0, 0},
		{"ttl does not lift Set-Cookie", 200, []string{"Set-Cookie", "a=1"}, Req{Policy: ttl2s}, -1, 0, 0, 0},
		{"ttl does not share an authorized response", 200, []string{"Cache-Control", "max-age=60"}, Req{Authorization: true, Policy: ttl2s}, -1, 0, 0, 0},
		{"ttl never makes a 5xx last", 503, nil, Req{Policy: ttl2s}, -1, 0, 0, 0},
		{"ttl leaves a 5xx's own lifetime capped", 500, []string{"Cache-Control", "max-age=60"}, Req{Policy: ttl2s}, MaxErrorFresh, SourceOrigin, 0, 0},
		{"default_ttl yields to max-age", 200, []string{"Cache-Control", "max-age=600"}, Req{Policy: dflt}, 600 * time.Second, SourceOrigin, time.Minute, time.Hour},
		{"default_ttl when the origin says nothing", 200, nil, Req{Policy: dflt}, 10 * time.Second, SourcePolicyDefault, time.Minute, time.Hour},
		{"default_ttl goes before the Last-Modified heuristic", 200, []string{"Last-Modified", ago(100 * time.Hour)}, Req{Policy: dflt}, 10 * time.Second, SourcePolicyDefault, time.Minute, time.Hour},
		{"default_ttl is not for requests with Cookie", 200, nil, Req{Cookie: true, Policy: dflt}, -1, 0, 0, 0},
		// The targeted fields (RFC 9213) govern the origin's word; a policy's ttl still comes first,
		// and the governing field's prohibitions still hold.
		{"ttl beats CDN-Cache-Control", 200, []string{"CDN-Cache-Control", "max-age=600"}, Req{Policy: ttl2s}, 2 * time.Second, SourcePolicy, time.Minute, time.Hour},
		{"ttl beats Surrogate-Control", 200, []string{"Surrogate-Control", "max-age=600"}, Req{Policy: ttl2s}, 2 * time.Second, SourcePolicy, time.Minute, time.Hour},
		{"ttl does not lift CDN-Cache-Control no-store", 200, []string{"Cache-Control", "max-age=60", "CDN-Cache-Control", "no-store"}, Req{Policy: ttl2s}, -1, 0, 0, 0},
		{"default_ttl yields to CDN-Cache-Control", 200, []string{"CDN-Cache-Control", "max-age=600"}, Req{Policy: dflt}, 600 * time.Second, SourceOrigin, time.Minute, time.Hour},
		{"policy windows beat the origin's and the defaults", 200, []string{"Cache-Control", "max-age=60, stale-while-revalidate=600"}, Req{Policy: windows}, time.Minute, SourceOrigin, 5 * time.Second, 0},
		{"must-revalidate still forbids stale serving", 200, []string{"Cache-Control", "max-age=60, must-revalidate"}, Req{Policy: windows}, time.Minute, SourceOrigin, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := header(append([]string{"Date", httpDate(now)}, tt.h...)...)
			d := Decide(tt.status, h, tt.req, now, now, std)
			if tt.want < 0 {
				if d.Store {
					t.Fatalf("stored with %+v, want not stored", d)
				}
				return
			}
			if !d.Store || d.Fresh != tt.want || d.Source != tt.source || d.StaleWhileRevalidate != tt.swr || d.StaleIfError != tt.sie {
				t.Fatalf("got %+v (source %s), want fresh %v from %s, windows %v/%v", d, d.Source, tt.want, tt.source, tt.swr, tt.sie)
			}
			if d.Guessed != (tt.source == SourcePolicyDefault) {
				t.Fatalf("Guessed = %v: a ttl is the operator's word, a default_ttl a guess like SWR_DEFAULT_TTL (served to no request with Cookie): %+v", d.Guessed, d)
			}
		})
	}
}
