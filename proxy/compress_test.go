package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
)

// newCompressingApp is the real app as main wires it with SWR_COMPRESS=br,gzip, in front of
// origin; with rdb, L2 is that Redis.
func newCompressingApp(tb testing.TB, origin string, rdb redis.UniversalClient) testApp {
	tb.Helper()
	return testApp{proxy.NewApp(newCompressingHandler(tb, origin, rdb), nil)}
}

// newCompressingHandler is the handler of newCompressingApp.
func newCompressingHandler(tb testing.TB, origin string, rdb redis.UniversalClient) *proxy.Handler {
	tb.Helper()
	return newHandlerWith(tb, origin, 64<<20, rdb, refresh.Compression{Codings: []string{"br", "gzip"}, MinBytes: 256})
}

// priceList is a JSON body of about n bytes.
func priceList(n int) string {
	var b strings.Builder
	b.WriteString(`{"prices":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"pair":"ASSET%d-USD","price":%d.%04d}`, i, i*7%13, i*7919%10000)
	}
	b.WriteString("]}")
	return b.String()
}

// jsonOrigin serves body as fresh JSON with ETag "p1" and the extra header pairs.
func jsonOrigin(tb testing.TB, body string, hdr ...string) *countingOrigin {
	o := &countingOrigin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"p1"`)
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Add(hdr[i], hdr[i+1])
		}
		io.WriteString(w, body)
	}))
	tb.Cleanup(o.Close)
	return o
}

// decoded is the body of r decoded per its Content-Encoding.
func decoded(t *testing.T, r reply) string {
	t.Helper()
	return string(testenv.Decode(t, r.Header.Get("Content-Encoding"), []byte(r.Body)))
}

// varyListsAcceptEncodingOnce reports whether the reply's Vary names Accept-Encoding exactly once.
func varyListsAcceptEncodingOnce(r reply) bool {
	n := 0
	for _, v := range r.Header.Values("Vary") {
		for item := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(item), "Accept-Encoding") {
				n++
			}
		}
	}
	return n == 1
}

func TestEachStoredCodingHasItsETagAndAnswers304(t *testing.T) {
	body := priceList(8 << 10)
	origin := jsonOrigin(t, body, "Vary", "Origin")
	app := newCompressingApp(t, origin.URL, nil)
	tests := []struct{ accept, coding, tag string }{
		{"gzip, deflate, br", "br", `"p1:swr-br"`},
		{"gzip", "gzip", `"p1:swr-gzip"`},
		{"br;q=0.5, gzip", "gzip", `"p1:swr-gzip"`},
		{"", "", `"p1"`},
		{"identity;q=0", "", `"p1"`}, // nothing stored acceptable: identity anyway
		{"deflate", "", `"p1"`},
	}
	tests = append(tests, struct{ accept, coding, tag string }{"absent", "", `"p1"`}) // no Accept-Encoding line at all
	for _, tt := range tests {
		hdr := []string{"Accept-Encoding", tt.accept}
		if tt.accept == "absent" {
			hdr = nil
		}
		r := app.get(t, "/prices", hdr...)
		if r.StatusCode != 200 || r.Header.Get("Content-Encoding") != tt.coding || r.Header.Get("ETag") != tt.tag {
			t.Errorf("Accept-Encoding %q: %d, Content-Encoding %q, ETag %s; want 200, %q, %s", tt.accept, r.StatusCode,
				r.Header.Get("Content-Encoding"), r.Header.Get("ETag"), tt.coding, tt.tag)
		}
		if decoded(t, r) != body {
			t.Errorf("Accept-Encoding %q: the body is not the origin's", tt.accept)
		}
		if !varyListsAcceptEncodingOnce(r) || !strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("Accept-Encoding %q: Vary %q, want the origin's and Accept-Encoding once", tt.accept, r.Header.Values("Vary"))
		}
		if tt.coding != "" && r.ContentLength >= int64(len(body)) {
			t.Errorf("Accept-Encoding %q: Content-Length %d, not smaller than %d", tt.accept, r.ContentLength, len(body))
		}
		// A poll with the tag it got (or nginx's weakened form of it) is answered 304.
		for _, inm := range []string{tt.tag, "W/" + tt.tag} {
			nm := app.get(t, "/prices", "Accept-Encoding", tt.accept, "If-None-Match", inm)
			if nm.StatusCode != 304 || nm.Header.Get("ETag") != tt.tag || nm.Body != "" || nm.Header.Get("Content-Encoding") != "" || !varyListsAcceptEncodingOnce(nm) {
				t.Errorf("Accept-Encoding %q, If-None-Match %s: %d ETag %s Content-Encoding %q Vary %q; want 304 with the same tag and Vary",
					tt.accept, inm, nm.StatusCode, nm.Header.Get("ETag"), nm.Header.Get("Content-Encoding"), nm.Header.Values("Vary"))
			}
		}
	}
	// Another coding's tag is another representation: a full 200.
	if r := app.get(t, "/prices", "Accept-Encoding", "gzip", "If-None-Match", `"p1:swr-br"`); r.StatusCode != 200 {
		t.Errorf("gzip client with the br tag: %d, want 200", r.StatusCode)
	}
	if n := origin.hits.Load(); n != 1 {
		t.Errorf("origin requests = %d, want 1 for every Accept-Encoding", n)
	}
}

func TestHeadGetsTheSelectedCodingsHeader(t *testing.T) {
	body := priceList(8 << 10)
	app := newCompressingApp(t, jsonOrigin(t, body).URL, nil)
	gz := app.get(t, "/h", "Accept-Encoding", "gzip")
	for _, tt := range []struct{ accept, coding, tag string }{{"gzip", "gzip", `"p1:swr-gzip"`}, {"", "", `"p1"`}} {
		r := app.do(t, http.MethodHead, "/h", nil, "Accept-Encoding", tt.accept)
		want := int64(len(body))
		if tt.coding == "gzip" {
			want = int64(len(gz.Body))
		}
		if r.StatusCode != 200 || r.Header.Get("Content-Encoding") != tt.coding || r.Header.Get("ETag") != tt.tag ||
			r.Header.Get("Content-Length") != fmt.Sprint(want) || r.Body != "" {
			t.Errorf("HEAD, Accept-Encoding %q: %d Content-Encoding %q ETag %s Content-Length %s body %d bytes; want %q %s %d, no body",
				tt.accept, r.StatusCode, r.Header.Get("Content-Encoding"), r.Header.Get("ETag"), r.Header.Get("Content-Length"), len(r.Body),
				tt.coding, tt.tag, want)
		}
	}
}

func TestRangesAreCutFromTheIdentityForm(t *testing.T) {
	body := priceList(8 << 10)
	app := newCompressingApp(t, jsonOrigin(t, body).URL, nil)
	app.get(t, "/r", "Accept-Encoding", "br")
	for _, tt := range []struct {
		ifRange string
		status  int
	}{{"", 206}, {`"p1"`, 206}, {`"p1:swr-gzip"`, 200}, {`W/"p1"`, 200}} {
		r := app.get(t, "/r", "Accept-Encoding", "gzip, br", "Range", "bytes=10-19", "If-Range", tt.ifRange)
		want := body[10:20]
		if tt.status == 200 {
			want = body
		}
		if r.StatusCode != tt.status || r.Header.Get("Content-Encoding") != "" || r.Header.Get("ETag") != `"p1"` || r.Body != want || !varyListsAcceptEncodingOnce(r) {
			t.Errorf("Range with If-Range %q: %d Content-Encoding %q ETag %s body %q; want %d, identity, \"p1\"",
				tt.ifRange, r.StatusCode, r.Header.Get("Content-Encoding"), r.Header.Get("ETag"), trim(r.Body), tt.status)
		}
	}
}

func TestSurrogateControlAndStoredFieldsStayWithCodedReplies(t *testing.T) {
	body := priceList(4 << 10)
	origin := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Surrogate-Control", "max-age=600")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Frame-Options", "DENY")
		io.WriteString(w, body)
	})
	app := newCompressingApp(t, origin.URL, nil)
	app.get(t, "/s", "Accept-Encoding", "gzip")
	r := app.get(t, "/s", "Accept-Encoding", "gzip")
	expect(t, r, 200, "HIT", "")
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Surrogate-Control") != "" || r.Header.Get("X-Frame-Options") != "DENY" || decoded(t, r) != body {
		t.Errorf("coded hit: Content-Encoding %q Surrogate-Control %q X-Frame-Options %q", r.Header.Get("Content-Encoding"),
			r.Header.Get("Surrogate-Control"), r.Header.Get("X-Frame-Options"))
	}
}

func TestASecondInstanceServesTheStoredCodingsFromRedis(t *testing.T) {
	rdb := redistest.Start(t).Client()
	body := priceList(8 << 10)
	origin := jsonOrigin(t, body)
	a := newCompressingApp(t, origin.URL, rdb)
	b := newCompressingApp(t, origin.URL, rdb)
	expect(t, a.get(t, "/l2", "Accept-Encoding", "br"), 200, "MISS", "")
	r := b.get(t, "/l2", "Accept-Encoding", "gzip")
	expect(t, r, 200, "HIT", "")
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("ETag") != `"p1:swr-gzip"` || decoded(t, r) != body ||
		r.Header.Get("Cache-Status") != "swrproxy; hit; detail=l2" {
		t.Errorf("second instance: Content-Encoding %q ETag %s Cache-Status %q", r.Header.Get("Content-Encoding"), r.Header.Get("ETag"), r.Header.Get("Cache-Status"))
	}
	if n := origin.hits.Load(); n != 1 {
		t.Errorf("origin requests = %d, want 1", n)
	}
}

// TestCodedRepliesAreCountedByCoding: swrproxy_coded_replies_total counts the replies from cache
// sent with a stored coding, by coding; identity replies are not counted.
func TestCodedRepliesAreCountedByCoding(t *testing.T) {
	o := jsonOrigin(t, priceList(4<<10))
	h := newCompressingHandler(t, o.URL, nil)
	a := testApp{proxy.NewApp(h, nil)}
	for _, ae := range []string{"", "gzip", "gzip", "br", "gzip;q=0.5, br;q=0.4", "identity"} {
		a.get(t, "/prices", "Accept-Encoding", ae)
	}
	if s := h.Stats(); s.RepliesGzip != 3 || s.RepliesBr != 1 {
		t.Errorf("coded replies: gzip %d, br %d; want 3 and 1", s.RepliesGzip, s.RepliesBr)
	}
}

// TestACodedReplyDoesNotOfferRanges: ranges are cut from the identity form, so only an identity
// reply says Accept-Ranges: bytes; a coded one says none (a client resuming a gzip download
// without If-Range would otherwise join identity bytes to gzip ones).
func TestACodedReplyDoesNotOfferRanges(t *testing.T) {
	o := jsonOrigin(t, priceList(4<<10), "Accept-Ranges", "bytes")
	a := newCompressingApp(t, o.URL, nil)
	for _, c := range []struct{ accept, coding, ranges string }{{"", "", "bytes"}, {"gzip", "gzip", "none"}, {"br", "br", "none"}} {
		r := a.get(t, "/prices", "Accept-Encoding", c.accept)
		if got := r.Header.Get("Content-Encoding"); got != c.coding {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q, want %q", c.accept, got, c.coding)
		}
		if got := r.Header.Values("Accept-Ranges"); len(got) != 1 || got[0] != c.ranges {
			t.Errorf("Accept-Encoding %q: Accept-Ranges %q, want %q", c.accept, got, c.ranges)
		}
	}
}

// TestACodingOneClientAcceptsNeverBecomesTheVariantOfClientsThatAcceptNone: an origin that
// varies on Accept-Encoding and encodes whatever it is asked (deflate for deflate, gzip for
// gzip, identity only without the field). A client's "deflate" normalises to identity, so its
// fill sends no Accept-Encoding; it used to be copied back from the client's request (the key's
// Vary lists it), and the deflate body was stored as the variant of every client that accepts
// no coding. With compression on (once the origin is known to encode anyway) and off.
func TestACodingOneClientAcceptsNeverBecomesTheVariantOfClientsThatAcceptNone(t *testing.T) {
	t.Run("compression on", func(t *testing.T) {
		unacceptedCoding(t, func(t *testing.T, u string) testApp { return newCompressingApp(t, u, nil) })
	})
	t.Run("compression off", func(t *testing.T) { unacceptedCoding(t, newTestApp) })
}

func unacceptedCoding(t *testing.T, mk func(*testing.T, string) testApp) {
	var mu sync.Mutex
	var asked []string
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ae := r.Header.Get("Accept-Encoding")
		mu.Lock()
		asked = append(asked, ae)
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Vary", "Accept-Encoding")
		switch {
		case ae == "":
			io.WriteString(w, `{"plain":true}`)
		case strings.Contains(ae, "deflate"):
			w.Header().Set("Content-Encoding", "deflate")
			io.WriteString(w, "DEFLATE-BYTES")
		default:
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, "\x1f\x8bGZIP-BYTES")
		}
	}))
	defer o.Close()
	a := mk(t, o.URL)
	a.get(t, "/x", "Accept-Encoding", "gzip")    // identity fill encoded: memo learned, gzip variant stored
	a.get(t, "/x", "Accept-Encoding", "deflate") // normalised to identity, but forwarded raw
	r := a.get(t, "/x")                          // a client without Accept-Encoding
	mu.Lock()
	t.Logf("origin asked %q", asked)
	mu.Unlock()
	t.Logf("no-AE client: X-Cache %s, Content-Encoding %q, body %q", r.Header.Get("X-Cache"), r.Header.Get("Content-Encoding"), r.Body)
	if ce := r.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("a client without Accept-Encoding was served Content-Encoding %q (stored by another client's fill)", ce)
	}
}
