package httpcache

import (
	"net/http"
	"reflect"
	"testing"
	"time"
)

// now is the response time of every TestDecide case.
var now = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// std are the shipped defaults (DESIGN.md).
var std = Defaults{TTL: time.Minute, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}

// header builds a canonical http.Header from name, value pairs; a repeated name adds a field line.
func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// stored is a stored Decision with the default stale windows.
func stored(fresh time.Duration) Decision {
	return Decision{Store: true, Fresh: fresh, StaleWhileRevalidate: std.StaleWhileRevalidate, StaleIfError: std.StaleIfError}
}

func TestDecide(t *testing.T) {
	noTTL := &Defaults{StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}
	noDefaults := &Defaults{}
	tests := []struct {
		name   string
		status int
		header http.Header
		auth   bool
		d      *Defaults     // nil means std
		delay  time.Duration // requestTime = now - delay
		want   Decision
	}{
		// Status.
		{name: "a 500 is never stored", status: 500, header: header("Cache-Control", "max-age=60"), want: Decision{Reason: "status"}},
		{name: "a 503 is never stored", status: 503, header: header("Cache-Control", "s-maxage=60"), want: Decision{Reason: "status"}},
		{name: "a 1xx is never stored", status: 103, header: header("Cache-Control", "max-age=60"), want: Decision{Reason: "status"}},
		{name: "a 206 is never stored", status: 206, header: header("Cache-Control", "max-age=60"), want: Decision{Reason: "status"}},
		{name: "a 304 is never stored", status: 304, header: header("Cache-Control", "max-age=60"), want: Decision{Reason: "status"}},
		{name: "a 200 without directives gets the default TTL", status: 200, header: header(), want: stored(time.Minute)},
		{name: "a 404 without directives gets the default TTL", status: 404, header: header(), want: stored(time.Minute)},
		{name: "a 301 without directives gets the default TTL", status: 301, header: header(), want: stored(time.Minute)},
		{name: "a 308 without directives gets the default TTL", status: 308, header: header(), want: stored(time.Minute)},
		{name: "a 204 without directives gets the default TTL", status: 204, header: header(), want: stored(time.Minute)},
		{name: "a 410 without directives gets the default TTL", status: 410, header: header(), want: stored(time.Minute)},
		{name: "a 302 without directives is not stored", status: 302, header: header(), want: Decision{Reason: "no-freshness"}},
		{name: "a 307 without directives is not stored", status: 307, header: header(), want: Decision{Reason: "no-freshness"}},
		{name: "a 400 without directives is not stored", status: 400, header: header(), want: Decision{Reason: "no-freshness"}},
		{name: "a public 403 without freshness is not stored", status: 403, header: header("Cache-Control", "public"), want: Decision{Reason: "no-freshness"}},
		{name: "a 302 with max-age is stored", status: 302, header: header("Cache-Control", "max-age=30"), want: stored(30 * time.Second)},
		{name: "a 403 with s-maxage is stored", status: 403, header: header("Cache-Control", "s-maxage=10"), want: stored(10 * time.Second)},
		{name: "a 307 with Expires is stored", status: 307,
			header: header("Date", httpDate(now), "Expires", httpDate(now.Add(90*time.Second))), want: stored(90 * time.Second)},
		{name: "a 200 without directives is not stored when the TTL is 0", status: 200, header: header(), d: noTTL,
			want: Decision{Reason: "no-freshness"}},
		{name: "a 200 with max-age is stored when the TTL is 0", status: 200, header: header("Cache-Control", "max-age=5"), d: noTTL,
			want: stored(5 * time.Second)},

		// Directives that forbid storing.
		{name: "no-store is not stored", status: 200, header: header("Cache-Control", "max-age=60, no-store"), want: Decision{Reason: "no-store"}},
		{name: "no-store on a second line is not stored", status: 200, header: header("Cache-Control", "max-age=60", "Cache-Control", "NO-STORE"),
			want: Decision{Reason: "no-store"}},
		{name: "private is not stored", status: 200, header: header("Cache-Control", "private, max-age=60"), want: Decision{Reason: "private"}},
		{name: "Vary star is not stored", status: 200, header: header("Vary", "*"), want: Decision{Reason: "vary-star"}},
		{name: "Vary star in a list is not stored", status: 200, header: header("Vary", "Accept", "Vary", "Accept-Encoding , *"),
			want: Decision{Reason: "vary-star"}},
		{name: "a Vary without star is stored", status: 200, header: header("Vary", "Accept-Encoding"), want: stored(time.Minute)},

		// Authorization (RFC 9111 §3.5).
		{name: "an authorized response is not stored", status: 200, header: header("Cache-Control", "max-age=60"), auth: true,
			want: Decision{Reason: "authorization"}},
		{name: "an authorized public response is stored", status: 200, header: header("Cache-Control", "public"), auth: true,
			want: stored(time.Minute)},
		{name: "an authorized response with s-maxage is stored", status: 200, header: header("Cache-Control", "s-maxage=20"), auth: true,
			want: stored(20 * time.Second)},
		{name: "an authorized response with must-revalidate is stored without stale windows", status: 200,
			header: header("Cache-Control", "must-revalidate, max-age=20"), auth: true,
			want: Decision{Store: true, Fresh: 20 * time.Second}},

		// Set-Cookie and qualified forms.
		{name: "Set-Cookie is not stored", status: 200, header: header("Cache-Control", "max-age=60", "Set-Cookie", "a=1"),
			want: Decision{Reason: "set-cookie"}},
		{name: "Set-Cookie named by no-cache is stripped and the rest stored", status: 200,
			header: header("Cache-Control", `max-age=60, no-cache="set-cookie"`, "Set-Cookie", "a=1"),
			want:   Decision{Store: true, Fresh: time.Minute, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour, StripHeaders: []string{"Set-Cookie"}}},
		{name: "Set-Cookie named by private is stripped and the rest stored", status: 200,
			header: header("Cache-Control", `private="Set-Cookie, X-User"`, "Set-Cookie", "a=1", "Set-Cookie", "b=2"),
			want:   Decision{Store: true, Fresh: time.Minute, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour, StripHeaders: []string{"Set-Cookie", "X-User"}}},
		{name: "Set-Cookie not named by no-cache is not stored", status: 200,
			header: header("Cache-Control", `no-cache="X-Foo"`, "Set-Cookie", "a=1"), want: Decision{Reason: "set-cookie"}},
		{name: "qualified fields are stripped even when absent", status: 200,
			header: header("Cache-Control", `no-cache="X-Foo", private="x-bar, X-Foo"`),
			want:   Decision{Store: true, Fresh: time.Minute, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour, StripHeaders: []string{"X-Bar", "X-Foo"}}},

		// Freshness sources.
		{name: "s-maxage wins over max-age", status: 200, header: header("Cache-Control", "max-age=60, s-maxage=10"), want: stored(10 * time.Second)},
		{name: "max-age wins over Expires", status: 200,
			header: header("Cache-Control", "max-age=60", "Date", httpDate(now), "Expires", httpDate(now.Add(time.Hour))), want: stored(time.Minute)},
		{name: "Expires minus Date is the lifetime (the Date does not age it)", status: 200,
			header: header("Date", httpDate(now.Add(-10*time.Second)), "Expires", httpDate(now.Add(20*time.Second))),
			want:   Decision{Store: true, Fresh: 30 * time.Second, Age: 0, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}},
		{name: "Expires without Date counts from the response time", status: 200,
			header: header("Expires", httpDate(now.Add(20*time.Second))), want: stored(20 * time.Second)},
		{name: "an invalid Expires is stale and beats the default TTL", status: 200, header: header("Expires", "0"), want: stored(0)},
		{name: "an Expires in the past is stale", status: 200,
			header: header("Date", httpDate(now), "Expires", httpDate(now.Add(-time.Hour))), want: stored(0)},
		{name: "differing Expires lines are stale", status: 200,
			header: header("Date", httpDate(now), "Expires", httpDate(now.Add(time.Hour)), "Expires", httpDate(now.Add(2*time.Hour))), want: stored(0)},
		{name: "an Expires beyond 2^31 seconds is capped", status: 200,
			header: header("Date", httpDate(now), "Expires", "Fri, 31 Dec 9999 23:59:59 GMT"), want: stored(maxDelta)},
		{name: "a malformed max-age is stale", status: 200, header: header("Cache-Control", "max-age=soon"), want: stored(0)},
		{name: "a stale response without windows or validator is not stored", status: 200, header: header("Cache-Control", "max-age=0"), d: noDefaults,
			want: Decision{Reason: "no-freshness"}},
		{name: "a stale response with an ETag is stored", status: 200, header: header("Cache-Control", "max-age=0", "ETag", `"v1"`), d: noDefaults,
			want: Decision{Store: true}},
		{name: "a stale response with Last-Modified is stored", status: 200,
			header: header("Cache-Control", "max-age=0", "Last-Modified", httpDate(now.Add(-time.Hour))), d: noDefaults, want: Decision{Store: true}},
		{name: "a stale response with a stale window is stored", status: 200, header: header("Cache-Control", "max-age=0, stale-while-revalidate=60"),
			d: noDefaults, want: Decision{Store: true, StaleWhileRevalidate: time.Minute}},

		// no-cache.
		{name: "no-cache with a validator is stored always stale", status: 200,
			header: header("Cache-Control", "no-cache, max-age=60, stale-while-revalidate=30", "ETag", `"v1"`), want: Decision{Store: true}},
		{name: "no-cache without a validator is not stored", status: 200, header: header("Cache-Control", "no-cache"),
			want: Decision{Reason: "no-freshness"}},
		{name: "no-cache when the TTL is 0 has no freshness source", status: 200, header: header("Cache-Control", "no-cache", "ETag", `"v1"`),
			d: noTTL, want: Decision{Reason: "no-freshness"}},

		// Stale windows.
		{name: "explicit stale directives win over the defaults", status: 200,
			header: header("Cache-Control", "max-age=10, stale-while-revalidate=5, stale-if-error=7"),
			want:   Decision{Store: true, Fresh: 10 * time.Second, StaleWhileRevalidate: 5 * time.Second, StaleIfError: 7 * time.Second}},
		{name: "an explicit 0 window wins over the default", status: 200, header: header("Cache-Control", "max-age=10, stale-while-revalidate=0"),
			want: Decision{Store: true, Fresh: 10 * time.Second, StaleIfError: time.Hour}},
		{name: "a malformed stale directive falls back to the default", status: 200, header: header("Cache-Control", "max-age=10, stale-if-error=x"),
			want: stored(10 * time.Second)},
		{name: "must-revalidate forbids the default windows", status: 200, header: header("Cache-Control", "max-age=10, must-revalidate"),
			want: Decision{Store: true, Fresh: 10 * time.Second}},
		{name: "proxy-revalidate forbids the default windows", status: 200, header: header("Cache-Control", "max-age=10, proxy-revalidate"),
			want: Decision{Store: true, Fresh: 10 * time.Second}},
		{name: "must-revalidate wins over explicit stale directives", status: 200,
			header: header("Cache-Control", "max-age=10, must-revalidate, stale-while-revalidate=30, stale-if-error=60"),
			want:   Decision{Store: true, Fresh: 10 * time.Second}},
		{name: "s-maxage does not forbid the default windows", status: 200, header: header("Cache-Control", "s-maxage=10"),
			want: stored(10 * time.Second)},
		{name: "negative defaults count as 0", status: 200, header: header("Cache-Control", "max-age=10"),
			d: &Defaults{TTL: -1, StaleWhileRevalidate: -time.Second, StaleIfError: -time.Second}, want: Decision{Store: true, Fresh: 10 * time.Second}},

		// Age (RFC 9111 §4.2.3).
		{name: "the Age header plus the response delay is the age", status: 200, header: header("Cache-Control", "max-age=60", "Age", "30"),
			delay: 2 * time.Second,
			want:  Decision{Store: true, Fresh: time.Minute, Age: 32 * time.Second, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}},
		{name: "the origin's Date does not age the response (clock skew, one-second resolution)", status: 200,
			header: header("Cache-Control", "max-age=60", "Age", "3", "Date", httpDate(now.Add(-10*time.Second))), delay: time.Second,
			want: Decision{Store: true, Fresh: time.Minute, Age: 4 * time.Second, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}},
		{name: "an invalid Age counts as 0", status: 200, header: header("Cache-Control", "max-age=60", "Age", "-5"), delay: time.Second,
			want: Decision{Store: true, Fresh: time.Minute, Age: time.Second, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}},
		{name: "a Date in the future gives no apparent age", status: 200,
			header: header("Cache-Control", "max-age=60", "Date", httpDate(now.Add(time.Hour))), want: stored(time.Minute)},
		{name: "a huge Age is capped at 2^31 seconds", status: 200, header: header("Cache-Control", "max-age=60", "Age", "99999999999999"),
			delay: time.Second,
			want:  Decision{Store: true, Fresh: time.Minute, Age: maxDelta, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := std
			if tt.d != nil {
				d = *tt.d
			}
			got := Decide(tt.status, tt.header, Req{Authorization: tt.auth}, now.Add(-tt.delay), now, d)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decide(%d, %v, auth=%v) = %+v, want %+v", tt.status, tt.header, tt.auth, got, tt.want)
			}
		})
	}
}
