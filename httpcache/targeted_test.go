package httpcache

import (
	"net/http"
	"reflect"
	"testing"
	"time"
)

// decideCase is one Decide call of the tables below, all received at now with the shipped defaults.
type decideCase struct {
	name   string
	status int
	header http.Header
	req    Req
	want   Decision
}

func runDecide(t *testing.T, tests []decideCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.status, tt.header, tt.req, now, now, std)
			got.Guessed = false
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decide(%d, %v, %+v) = %+v, want %+v", tt.status, tt.header, tt.req, got, tt.want)
			}
		})
	}
}

// targetedBy is stored(fresh) governed by the targeted field name.
func targetedBy(name string, fresh time.Duration) Decision {
	d := stored(fresh)
	d.Targeted = name
	return d
}

func TestDecideMustUnderstand(t *testing.T) {
	runDecide(t, []decideCase{
		{"RFC 9111 §5.2.2.3: must-understand lifts no-store for an understood status", 200,
			header("Cache-Control", "max-age=60, no-store, must-understand"), anonymous, stored(time.Minute)},
		{"RFC 9111 §5.2.2.3: must-understand lifts no-store for a 404", 404,
			header("Cache-Control", "no-store, must-understand, max-age=5"), anonymous, stored(5 * time.Second)},
		{"RFC 9111 §3: must-understand with a status swrproxy does not understand is not stored", 302,
			header("Cache-Control", "max-age=60, must-understand"), anonymous, Decision{Reason: "status"}},
		{"RFC 9111 §3: must-understand with a 503 is not stored", 503,
			header("Cache-Control", "max-age=60, no-store, must-understand"), anonymous, Decision{Reason: "status"}},
		{"must-understand with an argument does not count", 200,
			header("Cache-Control", "max-age=60, no-store, must-understand=1"), anonymous, Decision{Reason: "no-store"}},
		{"must-understand does not lift private", 200,
			header("Cache-Control", "max-age=60, private, no-store, must-understand"), anonymous, Decision{Reason: "private"}},
	})
}

func TestDecideCDNCacheControl(t *testing.T) {
	runDecide(t, []decideCase{
		{"RFC 9213 §2.2: CDN-Cache-Control max-age governs over Cache-Control", 200,
			header("Cache-Control", "max-age=5", "CDN-Cache-Control", "max-age=600"), anonymous, targetedBy(CDNCacheControl, 10*time.Minute)},
		{"RFC 9213 §2.2: CDN-Cache-Control lifts Cache-Control no-store for swrproxy", 200,
			header("Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"), anonymous, targetedBy(CDNCacheControl, time.Minute)},
		{"RFC 9213 §2.2: CDN-Cache-Control lifts Cache-Control private for swrproxy", 200,
			header("Cache-Control", "private, max-age=60", "CDN-Cache-Control", "s-maxage=30"), anonymous, targetedBy(CDNCacheControl, 30*time.Second)},
		{"RFC 9213 §2.2: CDN-Cache-Control no-store wins over Cache-Control max-age", 200,
			header("Cache-Control", "max-age=60", "CDN-Cache-Control", "no-store"), anonymous, Decision{Reason: "no-store"}},
		{"RFC 9213 §2.2: CDN-Cache-Control private", 200,
			header("Cache-Control", "public, max-age=60", "CDN-Cache-Control", "private"), anonymous, Decision{Reason: "private"}},
		{"RFC 9213 §2.2: Expires is ignored when CDN-Cache-Control governs", 200,
			header("Date", httpDate(now), "Expires", httpDate(now.Add(time.Hour)), "CDN-Cache-Control", "must-revalidate", "Last-Modified", ago(20*time.Hour)),
			anonymous, Decision{Store: true, Fresh: 2 * time.Hour, Source: SourceLastModified, Targeted: CDNCacheControl}},
		{"RFC 9213 §2.1: its stale windows and must-revalidate", 200,
			header("Cache-Control", "max-age=5, must-revalidate", "CDN-Cache-Control", "max-age=60, stale-while-revalidate=30, stale-if-error=90"),
			anonymous, Decision{Store: true, Fresh: time.Minute, StaleWhileRevalidate: 30 * time.Second, StaleIfError: 90 * time.Second, Targeted: CDNCacheControl}},
		{"RFC 9213 §2.1: CDN-Cache-Control no-cache", 200,
			header("Cache-Control", "max-age=60", "CDN-Cache-Control", "no-cache", "Etag", `"a"`), anonymous, Decision{Store: true, Targeted: CDNCacheControl}},
		{"RFC 9213 §2.1: a String max-age is ignored, the rest of the field stands", 200,
			header("Cache-Control", "max-age=60", "CDN-Cache-Control", `max-age="600", s-maxage=20`), anonymous, targetedBy(CDNCacheControl, 20*time.Second)},
		{"RFC 9213 §2.1: a negative max-age is ignored", 200,
			header("Cache-Control", "max-age=60", "CDN-Cache-Control", `max-age=-1, s-maxage=20`), anonymous, targetedBy(CDNCacheControl, 20*time.Second)},
		{"RFC 8941 §4.2.2: a repeated key keeps its last value", 200,
			header("CDN-Cache-Control", "max-age=10, max-age=20"), anonymous, targetedBy(CDNCacheControl, 20*time.Second)},
		{"RFC 8941 §4.2: field lines are one Dictionary", 200,
			header("CDN-Cache-Control", "max-age=10", "CDN-Cache-Control", "no-store"), anonymous, Decision{Reason: "no-store"}},
		{"RFC 8941: no-store=?0 is false", 200,
			header("CDN-Cache-Control", "no-store=?0, max-age=10"), anonymous, targetedBy(CDNCacheControl, 10*time.Second)},
		{"RFC 8941: parameters are skipped", 200,
			header("CDN-Cache-Control", "max-age=10;foo=bar, public;x"), anonymous, targetedBy(CDNCacheControl, 10*time.Second)},
		{"RFC 9213 §2.1: an invalid CDN-Cache-Control is ignored whole (upper-case key)", 200,
			header("Cache-Control", "max-age=60", "CDN-Cache-Control", "Max-Age=600"), anonymous, stored(time.Minute)},
		{"RFC 9213 §2.1: an invalid CDN-Cache-Control is ignored whole (no-store with a bad item)", 200,
			header("Cache-Control", "max-age=60", "CDN-Cache-Control", "no-store, max-age=1a"), anonymous, stored(time.Minute)},
		{"RFC 9213 §2.1: a trailing comma makes it invalid", 200,
			header("Cache-Control", "max-age=60", "CDN-Cache-Control", "no-store,"), anonymous, stored(time.Minute)},
		{"RFC 9213 §2.2: an empty CDN-Cache-Control does not govern", 200,
			header("Cache-Control", "max-age=60", "CDN-Cache-Control", ""), anonymous, stored(time.Minute)},
		{"a CDN-Cache-Control max-age lets a request with Cookie be stored", 200,
			header("CDN-Cache-Control", "max-age=60"), withCookie, targetedBy(CDNCacheControl, time.Minute)},
		{"RFC 9111 §3.5: CDN-Cache-Control s-maxage lets an authorized response be shared", 200,
			header("CDN-Cache-Control", "s-maxage=60"), withAuth, targetedBy(CDNCacheControl, time.Minute)},
		{"RFC 9111 §3.5: CDN-Cache-Control max-age alone does not", 200,
			header("Cache-Control", "public", "CDN-Cache-Control", "max-age=60"), withAuth, Decision{Reason: "authorization"}},
		{"RFC 9111 §3: a 503 with a CDN-Cache-Control max-age is stored", 503,
			header("CDN-Cache-Control", "max-age=10"), anonymous,
			Decision{Store: true, Fresh: 10 * time.Second, Targeted: CDNCacheControl}},
		{"RFC 9111 §5.2.2.3: must-understand in CDN-Cache-Control lifts its no-store", 200,
			header("CDN-Cache-Control", "no-store, must-understand, max-age=60"), anonymous, targetedBy(CDNCacheControl, time.Minute)},
		{"RFC 9111 §5.2.2.3: must-understand in CDN-Cache-Control refuses a status swrproxy does not understand", 503,
			header("CDN-Cache-Control", "must-understand, max-age=60"), anonymous, Decision{Reason: "status"}},
		{"RFC 9213 §2.2: CDN-Cache-Control goes before Surrogate-Control", 200,
			header("Surrogate-Control", "max-age=300", "CDN-Cache-Control", "max-age=60"), anonymous, targetedBy(CDNCacheControl, time.Minute)},
	})
}

func TestDecideSurrogateControl(t *testing.T) {
	runDecide(t, []decideCase{
		{"Surrogate-Control max-age governs over Cache-Control", 200,
			header("Cache-Control", "max-age=5", "Surrogate-Control", "max-age=300"), anonymous, targetedBy(SurrogateControl, 5*time.Minute)},
		{"Surrogate-Control lifts Cache-Control no-store", 200,
			header("Cache-Control", "no-store, max-age=0", "Surrogate-Control", "max-age=300"), anonymous, targetedBy(SurrogateControl, 5*time.Minute)},
		{"Surrogate-Control does not lift Cache-Control private", 200,
			header("Cache-Control", "private", "Surrogate-Control", "max-age=300"), anonymous, Decision{Reason: "private"}},
		{"Surrogate-Control no-store", 200,
			header("Cache-Control", "max-age=60", "Surrogate-Control", "no-store"), anonymous, Decision{Reason: "no-store"}},
		{"a freshness extension and content are ignored", 200,
			header("Surrogate-Control", `content="ESI/1.0", max-age=300+60`), anonymous, targetedBy(SurrogateControl, 5*time.Minute)},
		{"a directive for a named surrogate is not for swrproxy", 200,
			header("Cache-Control", "max-age=60", "Surrogate-Control", "max-age=300;edge1"), anonymous, stored(time.Minute)},
		{"a Surrogate-Control with only stale directives does not govern (it says nothing of storing)", 200,
			header("Cache-Control", "max-age=60", "Surrogate-Control", "stale-if-error=60"), anonymous, stored(time.Minute)},
		{"a Surrogate-Control with nothing swrproxy understands does not govern", 200,
			header("Cache-Control", "max-age=60", "Surrogate-Control", `content="ESI/1.0"`), anonymous, stored(time.Minute)},
		{"a malformed Surrogate-Control max-age is ignored", 200,
			header("Cache-Control", "max-age=60", "Surrogate-Control", "max-age=soon"), anonymous, stored(time.Minute)},
	})
}
