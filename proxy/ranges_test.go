package proxy_test

// Range requests answered from the cache (RFC 9110 §14), through the real Fiber app in front of
// a real origin.

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
)

const rangeBody = "0123456789"

// newRangeOrigin serves rangeBody with a strong ETag and a Last-Modified, cacheable; it counts
// the requests that reached it with a Range.
func newRangeOrigin(t *testing.T, ranged *atomic.Int64) *countingOrigin {
	return newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" || r.Header.Get("If-Range") != "" {
			ranged.Add(1)
		}
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, rangeBody)
	})
}

func TestRangesAreCutFromTheStoredBodyRFC9110Section14(t *testing.T) {
	t.Parallel()
	var ranged atomic.Int64
	o := newRangeOrigin(t, &ranged)
	p := newTestApp(t, o.URL)

	// A Range on a miss: the whole object is fetched (without Range) and stored, and the range
	// is cut from it.
	r := p.get(t, "/r", "Range", "bytes=2-4")
	expect(t, r, 206, "MISS", "234")
	if got := r.Header.Get("Content-Range"); got != "bytes 2-4/10" {
		t.Errorf("MISS Content-Range = %q", got)
	}
	if ranged.Load() != 0 {
		t.Error("the fill forwarded Range to the origin")
	}
	expect(t, p.get(t, "/r"), 200, "HIT", rangeBody)

	tests := []struct {
		name, rng, ifRange string
		status             int
		contentRange, body string
	}{
		{"first-last", "bytes=0-3", "", 206, "bytes 0-3/10", "0123"},
		{"first-", "bytes=7-", "", 206, "bytes 7-9/10", "789"},
		{"suffix", "bytes=-2", "", 206, "bytes 8-9/10", "89"},
		{"last beyond the end", "bytes=8-100", "", 206, "bytes 8-9/10", "89"},
		{"unsatisfiable", "bytes=10-", "", 416, "bytes */10", ""},
		{"zero suffix", "bytes=-0", "", 416, "bytes */10", ""},
		{"several ranges: the whole 200", "bytes=0-1,4-5", "", 200, "", rangeBody},
		{"another unit", "items=0-1", "", 200, "", rangeBody},
		{"invalid", "bytes=5-1", "", 200, "", rangeBody},
		{"If-Range with the entity-tag", "bytes=0-0", `"v1"`, 206, "bytes 0-0/10", "0"},
		{"If-Range with another entity-tag", "bytes=0-0", `"v0"`, 200, "", rangeBody},
		{"If-Range weak: strong comparison fails", "bytes=0-0", `W/"v1"`, 200, "", rangeBody},
		{"If-Range with Last-Modified", "bytes=0-0", "Mon, 01 Jan 2024 00:00:00 GMT", 206, "bytes 0-0/10", "0"},
		{"If-Range with another date", "bytes=0-0", "Tue, 02 Jan 2024 00:00:00 GMT", 200, "", rangeBody},
		{"If-Range failing: no 416 either", "bytes=50-", `"v0"`, 200, "", rangeBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := []string{"Range", tt.rng}
			if tt.ifRange != "" {
				hdr = append(hdr, "If-Range", tt.ifRange)
			}
			r := p.get(t, "/r", hdr...)
			expect(t, r, tt.status, "HIT", tt.body)
			if r.Body != tt.body {
				t.Errorf("body %q, want %q", r.Body, tt.body)
			}
			if got := r.Header.Get("Content-Range"); got != tt.contentRange {
				t.Errorf("Content-Range = %q, want %q", got, tt.contentRange)
			}
			if got := r.Header.Get("Accept-Ranges"); got != "bytes" {
				t.Errorf("Accept-Ranges = %q, want bytes", got)
			}
			if tt.status == 206 && (r.Header.Get("ETag") != `"v1"` || r.Header.Get("Content-Type") != "text/plain") {
				t.Errorf("206 without the stored fields: ETag %q Content-Type %q", r.Header.Get("ETag"), r.Header.Get("Content-Type"))
			}
		})
	}
	// RFC 9110 §13.2.2: If-None-Match is evaluated before Range.
	if r := p.get(t, "/r", "Range", "bytes=0-1", "If-None-Match", `"v1"`); r.StatusCode != 304 {
		t.Errorf("Range with a matching If-None-Match: status %d, want 304", r.StatusCode)
	}
	if n := o.hits.Load(); n != 1 || ranged.Load() != 0 {
		t.Errorf("origin hits = %d (%d with Range), want 1 (0)", n, ranged.Load())
	}
}

// TestOnlyGETOfAStored200IsRangedRFC9110Section14_2: HEAD, and stored statuses other than 200,
// ignore Range.
func TestOnlyGETOfAStored200IsRangedRFC9110Section14_2(t *testing.T) {
	t.Parallel()
	var ranged atomic.Int64
	p := newTestApp(t, newRangeOrigin(t, &ranged).URL)
	expect(t, p.get(t, "/h"), 200, "MISS", rangeBody)
	// "GET is the only method for which range handling is defined": a HEAD gets the 200's header.
	r := p.do(t, http.MethodHead, "/h", nil, "Range", "bytes=0-1")
	expect(t, r, 200, "HIT", "")
	if r.Body != "" || r.ContentLength != int64(len(rangeBody)) || r.Header.Get("Content-Range") != "" || r.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("HEAD with Range: body %q Content-Length %d Content-Range %q Accept-Ranges %q; want the 200's header, no body",
			r.Body, r.ContentLength, r.Header.Get("Content-Range"), r.Header.Get("Accept-Ranges"))
	}

	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.WriteHeader(404)
		fmt.Fprint(w, "not here")
	})
	p = newTestApp(t, o.URL)
	expect(t, p.get(t, "/gone"), 404, "MISS", "not here")
	r = p.get(t, "/gone", "Range", "bytes=0-1")
	expect(t, r, 404, "HIT", "not here")
	if r.Header.Get("Accept-Ranges") != "" || r.Header.Get("Content-Range") != "" {
		t.Errorf("a stored 404 says Accept-Ranges %q Content-Range %q", r.Header.Get("Accept-Ranges"), r.Header.Get("Content-Range"))
	}
}

// RFC 9110 §13.1.5: an If-Range date holds only when the stored Last-Modified is a strong
// validator (§8.8.2.2): a response whose Date is the same second as its Last-Modified may have
// changed within that second, so the client's copy might not be this one: the whole 200.
func TestIfRangeWithAWeakLastModifiedGetsTheWholeBodyRFC9110Section13_1_5(t *testing.T) {
	t.Parallel()
	const stamp = "Mon, 01 Jan 2024 00:00:00 GMT"
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Last-Modified", stamp)
		if r.URL.Path == "/weak" {
			w.Header().Set("Date", stamp) // modified in the second it was sent
		}
		fmt.Fprint(w, rangeBody)
	})
	p := newTestApp(t, o.URL)
	for path, want := range map[string]int{"/weak": 200, "/strong": 206} {
		p.get(t, path)
		if r := p.get(t, path, "Range", "bytes=0-0", "If-Range", stamp); r.StatusCode != want {
			t.Errorf("%s: If-Range with its Last-Modified: %d, want %d", path, r.StatusCode, want)
		}
	}
}
