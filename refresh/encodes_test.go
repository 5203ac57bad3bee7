package refresh

import (
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
)

// TestConcurrentClientsOfAnOriginThatEncodesAnywayShareOneFillOfTheirCoding: the requests that
// waited on the first (identity) fill of an origin that encodes whatever it is asked join the
// fill of their own coding, collapsed, instead of each asking the origin alone.
func TestConcurrentClientsOfAnOriginThatEncodesAnywayShareOneFillOfTheirCoding(t *testing.T) {
	o, asked := encodesAnyway(t, true)
	s := newTestStore(t, nil)
	f := compressing(t, s, o)
	gz := func() *fill.Request { return gzipRequest("/e") }
	const n = 5
	ctxs := make([]*waitingCtx, n)
	var wg sync.WaitGroup
	results := make([]*fill.Result, n)
	for i := range n {
		ctxs[i] = newWaitingCtx(t.Context())
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := f.Fill(ctxs[i], gz())
			if err != nil {
				t.Errorf("fill %d: %v", i, err)
			}
			results[i] = res
		}()
	}
	waitJoined(t, ctxs...)
	o.release()
	wg.Wait()
	for i, r := range results {
		if r == nil || r.Entry == nil {
			t.Errorf("fill %d: %+v, want the gzip variant", i, r)
		}
	}
	if got := asked(); len(got) > 2 {
		t.Errorf("origin asked %q for %d concurrent gzip clients, want 2 requests (identity, then gzip once)", got, n)
	}
}

// TestAnEntryStoredWhileCompressionWasBusyIsCompressedOnIts304: the renewal of an entry stored
// while every compression slot was busy compresses it, so it does not stay uncompressed (and
// gzipped by nginx on every hit) for as long as the origin answers 304.
func TestAnEntryStoredWhileCompressionWasBusyIsCompressedOnIts304(t *testing.T) {
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
		w.Header().Set("Cache-Control", "max-age=0")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(304)
			return
		}
		w.Write(jsonBody(4096))
	})
	s := newTestStore(t, nil)
	f := compressing(t, s, o)
	slots := f.compressSlots()
	for range cap(slots) {
		slots <- struct{}{}
	}
	res, err := f.Fill(t.Context(), request("/busy"))
	for range cap(slots) {
		<-slots
	}
	if err != nil || res.Entry == nil {
		t.Fatal(res, err)
	}
	r := request("/busy")
	r.Stale = res.Entry
	res, err = f.Fill(t.Context(), r)
	if err != nil || res.Entry == nil || !res.Revalidated {
		t.Fatal(res, err)
	}
	if len(res.Entry.Encodings) == 0 {
		t.Errorf("renewed by a 304 with slots free: still no codings (stored busy, never compressed while the origin answers 304)")
	}
}

// TestACookieFillDoesNotTeachTheEncodingMemo: a request with Cookie whose (shareable, explicitly
// fresh) answer is encoded does not make the anonymous fills that follow stop asking for
// identity: what one user's answer looks like is not everyone's.
func TestACookieFillDoesNotTeachTheEncodingMemo(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
		mu.Lock()
		asked = append(asked, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Cookie") != "" {
			w.Header().Set("Content-Encoding", "gzip") // the logged-in app server
			w.Write([]byte("\x1f\x8b not really"))
			return
		}
		w.Write(jsonBody(4096))
	})
	s := newTestStore(t, nil)
	f := compressing(t, s, o)
	r := request("/c")
	r.Cookie = true
	r.Header.Set("Cookie", "session=attacker")
	if res, err := f.Fill(t.Context(), r); err != nil {
		t.Fatal(err)
	} else if res.Pass != nil && res.Pass.Body != nil {
		res.Pass.Body.Close()
	}
	s.Delete(t.Context(), "/c")
	a := request("/c")
	a.Header.Set("Accept-Encoding", "gzip")
	res, err := f.Fill(t.Context(), a)
	if err != nil || res.Entry == nil {
		t.Fatal(res, err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("asked %q; anonymous entry codings %d AnyEncoding %v", asked, len(res.Entry.Encodings), res.Entry.AnyEncoding)
	if asked[len(asked)-1] != "identity" {
		t.Errorf("after one Cookie fill, an anonymous fill asked %q, want identity", asked[len(asked)-1])
	}
}

// TestA304WithNoTransformDropsTheStoredCodings: a 304 that now says no-transform renews the
// entry without its codings (RFC 9110 §7.7).
func TestA304WithNoTransformDropsTheStoredCodings(t *testing.T) {
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.Header().Set("Cache-Control", "max-age=60, no-transform")
			w.WriteHeader(304)
			return
		}
		w.Header().Set("Cache-Control", "max-age=0")
		w.Write(jsonBody(4096))
	})
	s := newTestStore(t, nil)
	f := compressing(t, s, o)
	res, err := f.Fill(t.Context(), request("/nt"))
	if err != nil || res.Entry == nil || len(res.Entry.Encodings) == 0 {
		t.Fatal(res, err)
	}
	r := request("/nt")
	r.Stale = res.Entry
	res, err = f.Fill(t.Context(), r)
	if err != nil || res.Entry == nil {
		t.Fatal(res, err)
	}
	if len(res.Entry.Encodings) != 0 {
		t.Errorf("renewed with no-transform: %d codings kept, want none", len(res.Entry.Encodings))
	}
}

// encodesAnyway starts an origin that answers gzip with Vary: Accept-Encoding whatever it is
// asked (held until released, when held), and returns what it was asked, in order.
func encodesAnyway(t *testing.T, held bool) (*testOrigin, func() []string) {
	var mu sync.Mutex
	var asked []string
	o := newTestOrigin(t, held, func(w http.ResponseWriter, r *http.Request, _ int64) {
		mu.Lock()
		asked = append(asked, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Write([]byte("\x1f\x8b not really"))
	})
	return o, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(asked)
	}
}

// gzipRequest is a client's request for key that accepts gzip.
func gzipRequest(key string) *fill.Request {
	r := request(key)
	r.Header.Set("Accept-Encoding", "gzip")
	r.Value = func(name string) string { return httpcache.VaryValue(name, r.Header.Get(name)) }
	return r
}
