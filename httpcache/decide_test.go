package httpcache

import (
	"net/http"
	"reflect"
	"testing"
	"time"
)

// now is the response time of every TestDecide case.
var now = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// std are the shipped defaults: SWR_DEFAULT_TTL off, stale windows of a minute and an hour.
var std = Defaults{StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}

// withTTL is std with an explicit SWR_DEFAULT_TTL=60s.
var withTTL = &Defaults{TTL: time.Minute, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}

// header builds a canonical http.Header from name, value pairs; a repeated name adds a field line.
func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// stored is a stored Decision with the origin's lifetime and the default stale windows.
func stored(fresh time.Duration) Decision {
	return Decision{Store: true, Fresh: fresh, StaleWhileRevalidate: std.StaleWhileRevalidate, StaleIfError: std.StaleIfError}
}

// storedError is a stored error page: the origin's lifetime, no default stale windows (Decide).
func storedError(fresh time.Duration) Decision { return Decision{Store: true, Fresh: fresh} }

// heuristic is stored with a lifetime from the Last-Modified heuristic (RFC 9111 §4.2.2).
func heuristic(fresh time.Duration) Decision {
	d := stored(fresh)
	d.Source = SourceLastModified
	return d
}

// byTTL is stored with SWR_DEFAULT_TTL as the lifetime.
func byTTL(fresh time.Duration) Decision {
	d := stored(fresh)
	d.Source = SourceDefaultTTL
	return d
}

// Requests as Decide sees them.
var (
	anonymous  = Req{}
	withCookie = Req{Cookie: true}
	withAuth   = Req{Authorization: true}
)

// ago returns the HTTP-date of now minus d.
func ago(d time.Duration) string { return httpDate(now.Add(-d)) }

// decideTests is shared by TestDecide and the seeds of FuzzDecide. Every response is received at
// now; d nil means std (SWR_DEFAULT_TTL off).
var decideTests = []struct {
	name   string
	status int
	header http.Header
	req    Req
	d      *Defaults
	delay  time.Duration // requestTime = now - delay
	want   Decision
}{
	// Status (RFC 9111 §3; RFC 9110 §15.1 heuristically cacheable statuses).
	{name: "RFC 9111 §3: a 500 with max-age is stored", status: 500, header: header("Cache-Control", "max-age=60"), want: storedError(MaxErrorFresh)},
	{name: "RFC 9111 §3: a 503 with s-maxage is stored", status: 503, header: header("Cache-Control", "s-maxage=60"), want: storedError(MaxErrorFresh)},
	{name: "RFC 9111 §4.2.2: a 503 without explicit freshness is not stored", status: 503,
		header: header("Last-Modified", ago(10*time.Hour)), d: withTTL, want: Decision{Reason: "no-freshness"}},
	{name: "RFC 9111 §3: a 502 with Expires is stored", status: 502,
		header: header("Date", httpDate(now), "Expires", httpDate(now.Add(time.Minute))), want: storedError(MaxErrorFresh)},
	{name: "RFC 9111 §3: an unknown final status with max-age is stored", status: 599, header: header("Cache-Control", "max-age=60"), want: storedError(MaxErrorFresh)},
	{name: "RFC 9110 §15.1: a 501 is heuristically cacheable", status: 501, header: header("Last-Modified", ago(10*time.Hour)),
		want: Decision{Store: true, Fresh: MaxErrorFresh, Source: SourceLastModified}},
	{name: "RFC 9111 §3: a 206 is not stored even with must-understand", status: 206,
		header: header("Cache-Control", "max-age=60, must-understand, no-store"), want: Decision{Reason: "status"}},
	{name: "RFC 6585 §4: a 429 is never stored, even with max-age", status: 429, header: header("Cache-Control", "max-age=60"), want: Decision{Reason: "status"}},
	{name: "RFC 9110 §15.5.9: a 408 is not stored (one client's connection)", status: 408, header: header("Cache-Control", "max-age=60"), want: Decision{Reason: "status"}},
	{name: "a 503 with CDN-Cache-Control keeps its whole lifetime (the origin targeted swrproxy)", status: 503,
		header: header("CDN-Cache-Control", "max-age=60"), want: Decision{Store: true, Fresh: time.Minute, Targeted: CDNCacheControl}},
	{name: "RFC 6585 §3: a 428 is not stored", status: 428, header: header("Cache-Control", "max-age=60"), want: Decision{Reason: "status"}},
	{name: "RFC 6585 §5: a 431 is never stored", status: 431, header: header("Cache-Control", "max-age=60"), want: Decision{Reason: "status"}},
	{name: "RFC 6585 §6: a 511 is never stored", status: 511, header: header("Cache-Control", "max-age=60"), want: Decision{Reason: "status"}},
	{name: "a 1xx is never stored", status: 103, header: header("Cache-Control", "max-age=60"), want: Decision{Reason: "status"}},
	{name: "a 206 is never stored", status: 206, header: header("Cache-Control", "max-age=60"), want: Decision{Reason: "status"}},
	{name: "a 304 is never stored", status: 304, header: header("Cache-Control", "max-age=60"), want: Decision{Reason: "status"}},
	{name: "a 302 with max-age is stored", status: 302, header: header("Cache-Control", "max-age=30"), want: stored(30 * time.Second)},
	{name: "a 403 with s-maxage is stored", status: 403, header: header("Cache-Control", "s-maxage=10"), want: stored(10 * time.Second)},
	{name: "a 307 with Expires is stored", status: 307,
		header: header("Date", httpDate(now), "Expires", httpDate(now.Add(90*time.Second))), want: stored(90 * time.Second)},
	{name: "a 200 with max-age is stored", status: 200, header: header("Cache-Control", "max-age=5"), want: stored(5 * time.Second)},

	// Nothing from the origin: SWR_DEFAULT_TTL, when set, for heuristically cacheable statuses.
	{name: "a 200 without directives or Last-Modified is not stored by default", status: 200, header: header(),
		want: Decision{Reason: "no-freshness"}},
	{name: "a 200 with only an ETag is not stored by default", status: 200, header: header("ETag", `"v1"`),
		want: Decision{Reason: "no-freshness"}},
	{name: "a 200 without directives gets an explicit default TTL", status: 200, header: header(), d: withTTL, want: byTTL(time.Minute)},
	{name: "a 404 without directives gets an explicit default TTL", status: 404, header: header(), d: withTTL, want: byTTL(time.Minute)},
	{name: "a 301 without directives gets an explicit default TTL", status: 301, header: header(), d: withTTL, want: byTTL(time.Minute)},
	{name: "a 308 without directives gets an explicit default TTL", status: 308, header: header(), d: withTTL, want: byTTL(time.Minute)},
	{name: "a 204 without directives gets an explicit default TTL", status: 204, header: header(), d: withTTL, want: byTTL(time.Minute)},
	{name: "a 410 without directives gets an explicit default TTL", status: 410, header: header(), d: withTTL, want: byTTL(time.Minute)},
	{name: "a 302 without directives is not stored even with a default TTL", status: 302, header: header(), d: withTTL,
		want: Decision{Reason: "no-freshness"}},
	{name: "a 307 without directives is not stored even with a default TTL", status: 307, header: header(), d: withTTL,
		want: Decision{Reason: "no-freshness"}},
	{name: "a 400 without directives is not stored even with a default TTL", status: 400, header: header(), d: withTTL,
		want: Decision{Reason: "no-freshness"}},
	{name: "a public 403 without freshness is not stored even with a default TTL", status: 403, header: header("Cache-Control", "public"),
		d: withTTL, want: Decision{Reason: "no-freshness"}},
	{name: "a default TTL over 2^31 seconds is capped", status: 200, header: header(),
		d: &Defaults{TTL: 1 << 62, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}, want: byTTL(maxDelta)},
	{name: "a negative default TTL is off", status: 200, header: header(),
		d: &Defaults{TTL: -time.Minute, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}, want: Decision{Reason: "no-freshness"}},

	// The Last-Modified heuristic (RFC 9111 §4.2.2): a tenth of Date − Last-Modified, at most a day.
	{name: "RFC 9111 §4.2.2: Last-Modified 10 hours before Date gives an hour", status: 200,
		header: header("Date", httpDate(now), "Last-Modified", ago(10*time.Hour)), want: heuristic(time.Hour)},
	{name: "RFC 9111 §4.2.2: the heuristic applies to a 404 too", status: 404,
		header: header("Date", httpDate(now), "Last-Modified", ago(100*time.Second)), want: heuristic(10 * time.Second)},
	{name: "RFC 9111 §4.2.2: the heuristic is capped at one day", status: 200,
		header: header("Date", httpDate(now), "Last-Modified", ago(100*24*time.Hour)), want: heuristic(24 * time.Hour)},
	{name: "RFC 9111 §4.2.2: ten days since Last-Modified is exactly the cap", status: 200,
		header: header("Date", httpDate(now), "Last-Modified", ago(240*time.Hour)), want: heuristic(24 * time.Hour)},
	{name: "RFC 9111 §4.2.2: Last-Modified in year 1 does not overflow", status: 200,
		header: header("Date", "Fri, 31 Dec 9999 23:59:59 GMT", "Last-Modified", "Mon, 01 Jan 0001 00:00:00 GMT"), want: heuristic(24 * time.Hour)},
	{name: "RFC 9111 §4.2.2: the heuristic is whole seconds", status: 200,
		header: header("Date", httpDate(now), "Last-Modified", ago(99*time.Second)), want: heuristic(9 * time.Second)},
	{name: "RFC 9111 §4.2.2: Last-Modified equal to Date gives 0 and is stored to revalidate", status: 200,
		header: header("Date", httpDate(now), "Last-Modified", httpDate(now)), want: heuristic(0)},
	{name: "RFC 9111 §4.2.2: without Date the interval ends at the response time", status: 200,
		header: header("Last-Modified", ago(10*time.Hour)), want: heuristic(time.Hour)},
	{name: "RFC 9111 §4.2.2: with an invalid Date the interval ends at the response time", status: 200,
		header: header("Date", "yesterday", "Last-Modified", ago(10*time.Hour)), want: heuristic(time.Hour)},
	{name: "RFC 9111 §4.2.2: Date and Last-Modified come from one clock, so a skewed origin clock does not matter", status: 200,
		header: header("Date", ago(5*time.Hour), "Last-Modified", ago(15*time.Hour)), want: heuristic(time.Hour)},
	{name: "RFC 9110 §5.6.7: an RFC 850 Last-Modified is accepted", status: 200,
		header: header("Date", "Sunday, 06-Nov-94 08:49:37 GMT", "Last-Modified", "Saturday, 05-Nov-94 22:49:37 GMT"), want: heuristic(time.Hour)},
	{name: "RFC 9110 §5.6.7: an asctime Last-Modified is accepted", status: 200,
		header: header("Date", "Sun Nov  6 08:49:37 1994", "Last-Modified", "Sat Nov  5 22:49:37 1994"), want: heuristic(time.Hour)},
	{name: "repeated equal Last-Modified lines give the heuristic", status: 200,
		header: header("Date", httpDate(now), "Last-Modified", ago(10*time.Hour), "Last-Modified", ago(10*time.Hour)), want: heuristic(time.Hour)},
	{name: "differing Last-Modified lines give no heuristic", status: 200,
		header: header("Date", httpDate(now), "Last-Modified", ago(10*time.Hour), "Last-Modified", ago(20*time.Hour)),
		want:   Decision{Reason: "no-freshness"}},
	{name: "an invalid Last-Modified gives no heuristic", status: 200, header: header("Last-Modified", "last tuesday"),
		want: Decision{Reason: "no-freshness"}},
	{name: "an invalid Last-Modified falls back to an explicit default TTL", status: 200, header: header("Last-Modified", "0"),
		d: withTTL, want: byTTL(time.Minute)},
	{name: "RFC 9110 §8.8.2.1: Last-Modified after Date gives no heuristic", status: 200,
		header: header("Date", httpDate(now), "Last-Modified", httpDate(now.Add(time.Hour))), want: Decision{Reason: "no-freshness"}},
	{name: "RFC 9110 §8.8.2.1: Last-Modified after the response time (no Date) gives no heuristic", status: 200,
		header: header("Last-Modified", httpDate(now.Add(time.Second))), want: Decision{Reason: "no-freshness"}},
	{name: "Last-Modified in the future falls back to an explicit default TTL", status: 200,
		header: header("Date", httpDate(now), "Last-Modified", httpDate(now.Add(time.Hour))), d: withTTL, want: byTTL(time.Minute)},
	{name: "RFC 9111 §4.2.2: no heuristic for a 302", status: 302,
		header: header("Date", httpDate(now), "Last-Modified", ago(10*time.Hour)), d: withTTL, want: Decision{Reason: "no-freshness"}},
	{name: "RFC 9111 §4.2.2: no heuristic for a 403, even public", status: 403,
		header: header("Cache-Control", "public", "Date", httpDate(now), "Last-Modified", ago(10*time.Hour)), want: Decision{Reason: "no-freshness"}},
	{name: "the heuristic goes before an explicit default TTL", status: 200,
		header: header("Date", httpDate(now), "Last-Modified", ago(10*time.Hour)), d: withTTL, want: heuristic(time.Hour)},
	{name: "a heuristic shorter than the default TTL still goes first", status: 200,
		header: header("Date", httpDate(now), "Last-Modified", ago(100*time.Second)), d: withTTL, want: heuristic(10 * time.Second)},
	{name: "RFC 9111 §4.2.2: max-age goes before the heuristic", status: 200,
		header: header("Cache-Control", "max-age=5", "Date", httpDate(now), "Last-Modified", ago(10*time.Hour)), want: stored(5 * time.Second)},
	{name: "RFC 9111 §4.2.2: s-maxage=0 goes before the heuristic", status: 200,
		header: header("Cache-Control", "s-maxage=0", "Date", httpDate(now), "Last-Modified", ago(10*time.Hour)), want: stored(0)},
	{name: "RFC 9111 §4.2.2: even an invalid Expires goes before the heuristic", status: 200,
		header: header("Expires", "0", "Date", httpDate(now), "Last-Modified", ago(10*time.Hour)), want: stored(0)},
	{name: "RFC 5861: explicit stale windows apply to a heuristic lifetime", status: 200,
		header: header("Cache-Control", "stale-while-revalidate=5", "Last-Modified", ago(10*time.Hour)),
		want:   Decision{Store: true, Fresh: time.Hour, Source: SourceLastModified, StaleWhileRevalidate: 5 * time.Second, StaleIfError: time.Hour}},
	{name: "must-revalidate keeps the heuristic but forbids stale windows", status: 200,
		header: header("Cache-Control", "must-revalidate", "Last-Modified", ago(10*time.Hour)),
		want:   Decision{Store: true, Fresh: time.Hour, Source: SourceLastModified}},
	{name: "no-cache with Last-Modified is stored always stale, not heuristically fresh", status: 200,
		header: header("Cache-Control", "no-cache", "Last-Modified", ago(10*time.Hour)), want: Decision{Store: true}},
	{name: "the heuristic does not change the age", status: 200, header: header("Age", "30", "Last-Modified", ago(10*time.Hour)),
		delay: time.Second,
		want:  Decision{Store: true, Fresh: time.Hour, Source: SourceLastModified, Age: 31 * time.Second, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}},

	// Directives that forbid storing.
	{name: "no-store is not stored", status: 200, header: header("Cache-Control", "max-age=60, no-store"), want: Decision{Reason: "no-store"}},
	{name: "no-store on a second line is not stored", status: 200, header: header("Cache-Control", "max-age=60", "Cache-Control", "NO-STORE"),
		want: Decision{Reason: "no-store"}},
	{name: "private is not stored", status: 200, header: header("Cache-Control", "private, max-age=60"), want: Decision{Reason: "private"}},
	{name: "Vary star is not stored", status: 200, header: header("Vary", "*"), d: withTTL, want: Decision{Reason: "vary-star"}},
	{name: "Vary star in a list is not stored", status: 200, header: header("Vary", "Accept", "Vary", "Accept-Encoding , *"),
		d: withTTL, want: Decision{Reason: "vary-star"}},
	{name: "a Vary without star is stored", status: 200, header: header("Vary", "Accept-Encoding"), d: withTTL, want: byTTL(time.Minute)},

	// Cookie: stored only when the origin says public, s-maxage or max-age (README "What is shared, and what is never stored").
	{name: "a Cookie request without Cache-Control is not stored", status: 200, header: header(), req: withCookie, d: withTTL,
		want: Decision{Reason: "cookie"}},
	{name: "a Cookie request without Cache-Control is not stored with the default TTL off", status: 200, header: header(), req: withCookie,
		want: Decision{Reason: "cookie"}},
	{name: "a Cookie request gets no heuristic from Last-Modified", status: 200,
		header: header("Date", httpDate(now), "Last-Modified", ago(10*time.Hour)), req: withCookie, want: Decision{Reason: "cookie"}},
	{name: "a Cookie request with only Expires is not stored", status: 200,
		header: header("Date", httpDate(now), "Expires", httpDate(now.Add(time.Hour))), req: withCookie, want: Decision{Reason: "cookie"}},
	{name: "a Cookie request with no-cache and an ETag is not stored", status: 200,
		header: header("Cache-Control", "no-cache", "ETag", `"v1"`), req: withCookie, want: Decision{Reason: "cookie"}},
	{name: "a Cookie request with must-revalidate alone is not stored", status: 200,
		header: header("Cache-Control", "must-revalidate", "ETag", `"v1"`), req: withCookie, d: withTTL, want: Decision{Reason: "cookie"}},
	{name: "a Cookie request with public=1 (not public) is not stored", status: 200,
		header: header("Cache-Control", "public=1", "Last-Modified", ago(10*time.Hour)), req: withCookie, want: Decision{Reason: "cookie"}},
	{name: "a Cookie request with a private response is private", status: 200, header: header("Cache-Control", "private"), req: withCookie,
		want: Decision{Reason: "private"}},
	{name: "a Cookie request's response with Set-Cookie and no Cache-Control is not stored", status: 200,
		header: header("Set-Cookie", "session=new"), req: withCookie, d: withTTL, want: Decision{Reason: "cookie"}},
	{name: "a Cookie request with max-age is stored", status: 200, header: header("Cache-Control", "max-age=60"), req: withCookie,
		want: stored(time.Minute)},
	{name: "a Cookie request with s-maxage is stored", status: 200, header: header("Cache-Control", "s-maxage=10"), req: withCookie,
		want: stored(10 * time.Second)},
	{name: "a Cookie request with max-age=0 and a validator is stored to revalidate", status: 200,
		header: header("Cache-Control", "max-age=0", "ETag", `"v1"`), req: withCookie, want: stored(0)},
	{name: "a Cookie request with max-age and Set-Cookie named by no-cache is stored without it", status: 200,
		header: header("Cache-Control", `max-age=60, no-cache="Set-Cookie"`, "Set-Cookie", "a=1"), req: withCookie,
		want: Decision{Store: true, Fresh: time.Minute, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour, StripHeaders: []string{"Set-Cookie"}}},
	{name: "RFC 9111 §4.2.2: a Cookie request with public gets the Last-Modified heuristic", status: 200,
		header: header("Cache-Control", "public", "Date", httpDate(now), "Last-Modified", ago(10*time.Hour)), req: withCookie,
		d: withTTL, want: heuristic(time.Hour)},
	{name: "a Cookie request with public and Expires is stored", status: 200,
		header: header("Cache-Control", "public", "Date", httpDate(now), "Expires", httpDate(now.Add(time.Hour))), req: withCookie,
		want: stored(time.Hour)},
	{name: "a Cookie request with public never gets the default TTL", status: 200, header: header("Cache-Control", "public"),
		req: withCookie, d: withTTL, want: Decision{Reason: "cookie"}},
	{name: "a Cookie request with public and nothing else has no freshness", status: 200, header: header("Cache-Control", "public"),
		req: withCookie, want: Decision{Reason: "no-freshness"}},
	{name: "a Cookie request with public, no-cache and an ETag is stored always stale", status: 200,
		header: header("Cache-Control", "public, no-cache", "ETag", `"v1"`), req: withCookie, d: withTTL, want: Decision{Store: true}},

	// Authorization (RFC 9111 §3.5), and never a lifetime the origin did not give.
	{name: "an authorized response is not stored", status: 200, header: header("Cache-Control", "max-age=60"), req: withAuth,
		want: Decision{Reason: "authorization"}},
	{name: "an authorized public response with max-age is stored", status: 200, header: header("Cache-Control", "public, max-age=30"),
		req: withAuth, want: stored(30 * time.Second)},
	{name: "an authorized response with s-maxage is stored", status: 200, header: header("Cache-Control", "s-maxage=20"), req: withAuth,
		want: stored(20 * time.Second)},
	{name: "an authorized response with must-revalidate is stored without stale windows", status: 200,
		header: header("Cache-Control", "must-revalidate, max-age=20"), req: withAuth,
		want: Decision{Store: true, Fresh: 20 * time.Second}},
	{name: "an authorized public response never gets the default TTL", status: 200, header: header("Cache-Control", "public"),
		req: withAuth, d: withTTL, want: Decision{Reason: "authorization"}},
	{name: "an authorized public response gets no heuristic from Last-Modified", status: 200,
		header: header("Cache-Control", "public", "Date", httpDate(now), "Last-Modified", ago(10*time.Hour)), req: withAuth,
		want: Decision{Reason: "authorization"}},
	{name: "an authorized must-revalidate response gets no heuristic from Last-Modified", status: 200,
		header: header("Cache-Control", "must-revalidate", "Last-Modified", ago(10*time.Hour)), req: withAuth,
		want: Decision{Reason: "authorization"}},
	{name: "an authorized public response with nothing else has no freshness", status: 200, header: header("Cache-Control", "public"),
		req: withAuth, want: Decision{Reason: "no-freshness"}},
	{name: "an authorized public response with Expires is stored", status: 200,
		header: header("Cache-Control", "public", "Date", httpDate(now), "Expires", httpDate(now.Add(time.Minute))), req: withAuth,
		want: stored(time.Minute)},
	{name: "an authorized public no-cache response with an ETag is stored always stale", status: 200,
		header: header("Cache-Control", "public, no-cache", "ETag", `"v1"`), req: withAuth, d: withTTL, want: Decision{Store: true}},
	{name: "a request with Authorization and Cookie needs both rules", status: 200,
		header: header("Cache-Control", "s-maxage=20", "Last-Modified", ago(10*time.Hour)), req: Req{Authorization: true, Cookie: true},
		want: stored(20 * time.Second)},
	{name: "a request with Authorization and Cookie is not stored with public alone", status: 200,
		header: header("Cache-Control", "public", "Last-Modified", ago(10*time.Hour)), req: Req{Authorization: true, Cookie: true},
		d: withTTL, want: Decision{Reason: "authorization"}},

	// Set-Cookie and qualified forms.
	{name: "Set-Cookie is not stored", status: 200, header: header("Cache-Control", "max-age=60", "Set-Cookie", "a=1"),
		want: Decision{Reason: "set-cookie"}},
	{name: "Set-Cookie named by no-cache is stripped and the rest stored", status: 200,
		header: header("Cache-Control", `max-age=60, no-cache="set-cookie"`, "Set-Cookie", "a=1"),
		want:   Decision{Store: true, Fresh: time.Minute, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour, StripHeaders: []string{"Set-Cookie"}}},
	{name: "Set-Cookie named by private is stripped and the rest stored", status: 200,
		header: header("Cache-Control", `private="Set-Cookie, X-User"`, "Set-Cookie", "a=1", "Set-Cookie", "b=2"), d: withTTL,
		want: Decision{Store: true, Fresh: time.Minute, Source: SourceDefaultTTL, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour,
			StripHeaders: []string{"Set-Cookie", "X-User"}}},
	{name: "Set-Cookie not named by no-cache is not stored", status: 200,
		header: header("Cache-Control", `no-cache="X-Foo"`, "Set-Cookie", "a=1"), want: Decision{Reason: "set-cookie"}},
	{name: "qualified fields are stripped even when absent", status: 200,
		header: header("Cache-Control", `no-cache="X-Foo", private="x-bar, X-Foo"`, "Last-Modified", ago(10*time.Hour)),
		want: Decision{Store: true, Fresh: time.Hour, Source: SourceLastModified, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour,
			StripHeaders: []string{"X-Bar", "X-Foo"}}},

	// Freshness from the origin (RFC 9111 §4.2.1).
	{name: "s-maxage wins over max-age", status: 200, header: header("Cache-Control", "max-age=60, s-maxage=10"), want: stored(10 * time.Second)},
	{name: "max-age wins over Expires", status: 200,
		header: header("Cache-Control", "max-age=60", "Date", httpDate(now), "Expires", httpDate(now.Add(time.Hour))), want: stored(time.Minute)},
	{name: "Expires minus Date is the lifetime (the Date does not age it)", status: 200,
		header: header("Date", httpDate(now.Add(-10*time.Second)), "Expires", httpDate(now.Add(20*time.Second))),
		want:   Decision{Store: true, Fresh: 30 * time.Second, Age: 0, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}},
	{name: "Expires without Date counts from the response time", status: 200,
		header: header("Expires", httpDate(now.Add(20*time.Second))), want: stored(20 * time.Second)},
	{name: "an invalid Expires is stale and beats the default TTL", status: 200, header: header("Expires", "0"), d: withTTL, want: stored(0)},
	{name: "RFC 9110 §5.6.7, RFC 9111 §5.3: an Expires with a one-digit hour is invalid, so stale", status: 200,
		header: header("Date", httpDate(now), "Expires", now.Add(4*time.Hour).Format("Mon, 02 Jan 2006 3:04:05 GMT")), want: stored(0)},
	{name: "RFC 9110 §5.6.7: an Expires in UTC rather than GMT is invalid, so stale", status: 200,
		header: header("Date", httpDate(now), "Expires", now.Add(time.Hour).Format("Mon, 02 Jan 2006 15:04:05 UTC")), want: stored(0)},
	{name: "RFC 9110 §5.6.7: an asctime Expires is valid", status: 200,
		header: header("Date", httpDate(now), "Expires", now.Add(time.Hour).Format(time.ANSIC)), want: stored(time.Hour)},
	{name: "an Expires in the past is stale", status: 200,
		header: header("Date", httpDate(now), "Expires", httpDate(now.Add(-time.Hour))), want: stored(0)},
	{name: "differing Expires lines are stale", status: 200,
		header: header("Date", httpDate(now), "Expires", httpDate(now.Add(time.Hour)), "Expires", httpDate(now.Add(2*time.Hour))), want: stored(0)},
	{name: "an Expires beyond 2^31 seconds is capped", status: 200,
		header: header("Date", httpDate(now), "Expires", "Fri, 31 Dec 9999 23:59:59 GMT"), want: stored(maxDelta)},
	{name: "a malformed max-age is stale", status: 200, header: header("Cache-Control", "max-age=soon"), want: stored(0)},
	{name: "a stale response without windows or validator is not stored", status: 200, header: header("Cache-Control", "max-age=0"), d: &Defaults{},
		want: Decision{Reason: "no-freshness"}},
	{name: "a stale response with an ETag is stored", status: 200, header: header("Cache-Control", "max-age=0", "ETag", `"v1"`), d: &Defaults{},
		want: Decision{Store: true}},
	{name: "a stale response with Last-Modified is stored", status: 200,
		header: header("Cache-Control", "max-age=0", "Last-Modified", httpDate(now.Add(-time.Hour))), d: &Defaults{}, want: Decision{Store: true}},
	{name: "a stale response with a stale window is stored", status: 200, header: header("Cache-Control", "max-age=0, stale-while-revalidate=60"),
		d: &Defaults{}, want: Decision{Store: true, StaleWhileRevalidate: time.Minute}},

	// no-cache (RFC 9111 §5.2.2.4): stored, revalidated on every use.
	{name: "no-cache with a validator is stored always stale", status: 200,
		header: header("Cache-Control", "no-cache, max-age=60, stale-while-revalidate=30", "ETag", `"v1"`), want: Decision{Store: true}},
	{name: "RFC 9111 §3: no-cache with an ETag needs no freshness source for a 200", status: 200,
		header: header("Cache-Control", "no-cache", "ETag", `"v1"`), want: Decision{Store: true}},
	{name: "RFC 9111 §3: no-cache with an ETag on a 302 needs explicit freshness", status: 302,
		header: header("Cache-Control", "no-cache", "ETag", `"v1"`), d: withTTL, want: Decision{Reason: "no-freshness"}},
	{name: "no-cache without a validator is not stored", status: 200, header: header("Cache-Control", "no-cache"), d: withTTL,
		want: Decision{Reason: "no-freshness"}},

	// Stale windows (RFC 5861).
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
	{name: "the default windows apply to the default TTL", status: 200, header: header(), d: withTTL, want: byTTL(time.Minute)},
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
	{name: "RFC 9111 §5.1: a list-based Age uses its first member", status: 200,
		header: header("Cache-Control", "max-age=60", "Age", "7200, 0"), delay: time.Second,
		want: Decision{Store: true, Fresh: time.Minute, Age: 7201 * time.Second, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}},
	{name: "a Date in the future gives no apparent age", status: 200,
		header: header("Cache-Control", "max-age=60", "Date", httpDate(now.Add(time.Hour))), want: stored(time.Minute)},
	{name: "a huge Age is capped at 2^31 seconds", status: 200, header: header("Cache-Control", "max-age=60", "Age", "99999999999999"),
		delay: time.Second,
		want:  Decision{Store: true, Fresh: time.Minute, Age: maxDelta, StaleWhileRevalidate: time.Minute, StaleIfError: time.Hour}},
}

func TestDecide(t *testing.T) {
	for _, tt := range decideTests {
		t.Run(tt.name, func(t *testing.T) {
			d := std
			if tt.d != nil {
				d = *tt.d
			}
			got := Decide(tt.status, tt.header, tt.req, now.Add(-tt.delay), now, d)
			got.Guessed = false // TestGuessedLifetimesAreNotForCookies checks it
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decide(%d, %v, %+v) = %+v, want %+v", tt.status, tt.header, tt.req, got, tt.want)
			}
		})
	}
}

// fuzzFields are the response fields FuzzDecide sets; each fuzzed string is split on "\n" into
// field lines, so repeated fields are covered too.
var fuzzFields = []string{"Cache-Control", "Expires", "Date", "Last-Modified", "Age", "Vary", "Set-Cookie", "Etag",
	"Cdn-Cache-Control", "Surrogate-Control"}

var reasons = []string{"status", "no-store", "private", "vary-star", "authorization", "cookie", "set-cookie", "no-freshness"}
