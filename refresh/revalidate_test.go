package refresh

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/tiers"
)

// staleEntry is a stored response to key that went stale a minute ago, with validators.
func staleEntry(key string) *tiers.Entry {
	return &tiers.Entry{
		Key:    key,
		Status: http.StatusOK,
		Header: []tiers.Field{{Name: "Content-Type", Value: "text/plain"}, {Name: "Last-Modified", Value: "Wed, 21 Oct 2015 07:28:00 GMT"},
			{Name: "X-Kept", Value: "a"}, {Name: "X-Kept", Value: "b"}},
		Body:       []byte("old body"),
		ETag:       `"v1"`,
		OriginETag: true,
		Stored:     time.Now().Add(-2 * time.Minute),
		Fresh:      time.Minute,

		StaleWhileRevalidate: time.Hour,
	}
}

// revalidatingOrigin answers 304 with cacheControl to a request whose validators match the
// stale entry's (If-None-Match "v1", or without it an If-Modified-Since) and records them.
func revalidatingOrigin(t *testing.T, cacheControl string) (o *testOrigin, validators func() (inm, ims string)) {
	var mu sync.Mutex
	var inm, ims string
	o = newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
		mu.Lock()
		inm, ims = r.Header.Get("If-None-Match"), r.Header.Get("If-Modified-Since")
		mu.Unlock()
		w.Header().Set("Cache-Control", cacheControl)
		inm := r.Header.Get("If-None-Match")
		if inm == `"v1"` || inm == "" && r.Header.Get("If-Modified-Since") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "new body")
	})
	return o, func() (string, string) {
		mu.Lock()
		defer mu.Unlock()
		return inm, ims
	}
}

func TestRevalidationRenewsTheStaleEntryOn304(t *testing.T) {
	tests := []struct {
		name       string
		originETag bool   // the stale entry's ETag came from the origin (else swrproxy computed it)
		wantINM    string // If-None-Match sent
	}{
		{"origin etag", true, `"v1"`},
		{"computed etag", false, ""}, // meaningless to the origin: If-Modified-Since only
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, validators := revalidatingOrigin(t, "max-age=120")
			s := newTestStore(t, nil)
			f := newTestFiller(t, s, o)
			old := staleEntry("/r")
			old.OriginETag = tt.originETag
			if err := s.Set(t.Context(), old); err != nil {
				t.Fatalf("Set(stale entry): %v", err)
			}
			r := request("/r")
			r.Stale = old

			before := time.Now()
			res, err := f.Fill(t.Context(), r)
			if err != nil {
				t.Fatalf("Fill: %v", err)
			}
			if inm, ims := validators(); inm != tt.wantINM || ims != old.LastModified() {
				t.Errorf("origin got If-None-Match %q, If-Modified-Since %q; want %q, %q", inm, ims, tt.wantINM, old.LastModified())
			}
			if got := o.hits.Load(); got != 1 {
				t.Errorf("origin requests = %d, want 1", got)
			}
			e := res.Entry
			if !res.Revalidated || e == nil {
				t.Fatalf("Fill = %+v, want Revalidated with an entry", res)
			}
			if string(e.Body) != "old body" || e.ETag != old.ETag || e.Status != http.StatusOK {
				t.Errorf("renewed entry: status %d, ETag %s, body %q; want the stale entry's 200, %s, %q", e.Status, e.ETag, e.Body, old.ETag, old.Body)
			}
			if e.Stored.Before(before) {
				t.Errorf("renewed entry Stored = %v, want the time of the 304 (after %v)", e.Stored, before)
			}
			if e.Fresh != 120*time.Second {
				t.Errorf("renewed entry Fresh = %v, want 2m0s from the 304's max-age", e.Fresh)
			}
			if got := fieldValues(e, "X-Kept"); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("renewed entry X-Kept = %q, want the stored [a b]", got)
			}
			if got := fieldValues(e, "Content-Type"); !slices.Equal(got, []string{"text/plain"}) {
				t.Errorf("renewed entry Content-Type = %q, want the stored [text/plain]", got)
			}
			if got := fieldValues(e, "Cache-Control"); !slices.Equal(got, []string{"max-age=120"}) {
				t.Errorf("renewed entry Cache-Control = %q, want the 304's [max-age=120]", got)
			}
			if got := variant(s, "/r"); got != e {
				t.Errorf("store holds %p, want the renewed entry %p", got, e)
			}
			if got := f.stats.Revalidated.Load(); got != 1 {
				t.Errorf("Stats.Revalidated = %d, want 1", got)
			}

			// The next revalidation asks the same question: a computed tag does not become the origin's.
			if e.OriginETag != tt.originETag {
				t.Errorf("renewed entry OriginETag = %v, want %v as before", e.OriginETag, tt.originETag)
			}
			r = request("/r")
			r.Stale = e
			if _, err := f.Fill(t.Context(), r); err != nil {
				t.Fatalf("second Fill: %v", err)
			}
			if inm, _ := validators(); inm != tt.wantINM {
				t.Errorf("second revalidation sent If-None-Match %q, want %q", inm, tt.wantINM)
			}
		})
	}
}

// RFC 9111 §4.3.4: a 304 confirms the stored body even when its fields forbid storing it: the
// revalidating request gets that body with the 304's fields (not a 502), and the entry is gone.
func TestA304ThatForbidsStorageServesTheBodyOnceAndDeletesTheEntry(t *testing.T) {
	o, _ := revalidatingOrigin(t, "no-store")
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)
	old := staleEntry("/r")
	if err := s.Set(t.Context(), old); err != nil {
		t.Fatalf("Set(stale entry): %v", err)
	}
	r := request("/r")
	r.Stale = old

	res, err := f.Fill(t.Context(), r)
	if err != nil || res.Pass == nil || res.Entry != nil {
		t.Fatalf("Fill = %+v, %v; want a Pass of the confirmed body", res, err)
	}
	body, _ := io.ReadAll(res.Pass.Body)
	res.Pass.Body.Close()
	if res.Pass.Status != http.StatusOK || string(body) != "old body" || res.Pass.Length != int64(len(body)) {
		t.Errorf("Pass = %d, %q (length %d); want the stored 200 and its body", res.Pass.Status, body, res.Pass.Length)
	}
	if got := res.Pass.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Pass Cache-Control = %q, want the 304's no-store", got)
	}
	if got := res.Pass.Header.Values("X-Kept"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Pass X-Kept = %q, want the stored fields [a b]", got)
	}
	if res.NotStored != "no-store" {
		t.Errorf("NotStored = %q, want no-store", res.NotStored)
	}
	if variant(s, "/r") != nil {
		t.Errorf("the entry is still stored after a 304 with no-store")
	}
	if got := f.stats.Revalidated.Load(); got != 0 {
		t.Errorf("Stats.Revalidated = %d, want 0", got)
	}
}

// Surrogate-Control is stored with the entry (never sent to clients): a 304 that does not repeat
// it renews the entry under the same instructions, as RFC 9111 §4.3.4 keeps every stored field
// the 304 does not replace. Before, the entry forgot it and fell back to Cache-Control: no-store
// deleted the entry and failed the request.
func TestA304KeepsTheStoredSurrogateControl(t *testing.T) {
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified) // no Surrogate-Control on the 304
			return
		}
		w.Header().Set("Surrogate-Control", "max-age=90")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "body")
	})
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)
	res, err := f.Fill(t.Context(), request("/s"))
	if err != nil || res.Entry == nil {
		t.Fatalf("first Fill = %+v, %v; want an entry stored under Surrogate-Control", res, err)
	}
	first := res.Entry
	if got := fieldValues(first, "Surrogate-Control"); !slices.Equal(got, []string{"max-age=90"}) {
		t.Fatalf("stored Surrogate-Control = %q, want [max-age=90]", got)
	}
	first.Stored = first.Stored.Add(-time.Hour) // let it go stale
	r := request("/s")
	r.Stale = first
	res, err = f.Fill(t.Context(), r)
	if err != nil || res.Entry == nil || !res.Revalidated {
		t.Fatalf("revalidating Fill = %+v, %v; want the entry renewed by the 304", res, err)
	}
	if res.Entry.Fresh != 90*time.Second {
		t.Errorf("renewed Fresh = %v, want 1m30s from the stored Surrogate-Control", res.Entry.Fresh)
	}
	if variant(s, "/s") != res.Entry {
		t.Error("the renewed entry is not the stored one")
	}
}

// A stored response with no-cache and a validator is revalidated before every use (RFC 9111
// §5.2.2.4), with a conditional request (§4.3.1), and a 304 renews it without a body (§4.3.4):
// it stays stale at once and is never served stale, even with operator defaults for the stale
// windows, so proxy hands every use of it to Fill with the copy as r.Stale.
func TestANoCacheResponseIsRevalidatedConditionallyOnEveryUse(t *testing.T) {
	const lastModified = "Wed, 21 Oct 2015 07:28:00 GMT"
	tests := []struct {
		name, etag, lastModified string
		wantINM, wantIMS         string // the validators of every revalidation
	}{
		{"etag", `"v1"`, "", `"v1"`, ""},
		{"last-modified", "", lastModified, "", lastModified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var conditional []string // If-None-Match | If-Modified-Since of each origin request
			o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
				inm, ims := r.Header.Get("If-None-Match"), r.Header.Get("If-Modified-Since")
				mu.Lock()
				conditional = append(conditional, inm+"|"+ims)
				mu.Unlock()
				w.Header().Set("Cache-Control", "no-cache")
				if tt.etag != "" {
					w.Header().Set("ETag", tt.etag)
				}
				if tt.lastModified != "" {
					w.Header().Set("Last-Modified", tt.lastModified)
				}
				if inm != "" && inm == tt.etag || inm == "" && ims != "" && ims == tt.lastModified {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				io.WriteString(w, "body")
			})
			s := newTestStore(t, nil)
			f := newTestFiller(t, s, o)
			f.Defaults.StaleWhileRevalidate, f.Defaults.StaleIfError = time.Hour, time.Hour

			res, err := f.Fill(t.Context(), request("/nc"))
			if err != nil || res.Entry == nil {
				t.Fatalf("Fill = %+v, %v; want the stored entry", res, err)
			}
			for i := range 2 {
				e := variant(s, "/nc")
				if e == nil || e.Fresh != 0 || e.StaleWhileRevalidate != 0 || e.StaleIfError != 0 {
					t.Fatalf("use %d: stored %+v, want an entry stale at once with no stale windows", i, e)
				}
				r := request("/nc")
				r.Stale = e
				res, err := f.Fill(t.Context(), r)
				if err != nil || !res.Revalidated || res.Entry == nil || string(res.Entry.Body) != "body" {
					t.Fatalf("use %d: Fill = %+v, %v; want the copy renewed by a 304", i, res, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			want := []string{"|", tt.wantINM + "|" + tt.wantIMS, tt.wantINM + "|" + tt.wantIMS}
			if !slices.Equal(conditional, want) {
				t.Errorf("origin requests' If-None-Match|If-Modified-Since = %q, want %q", conditional, want)
			}
		})
	}
}

// TestALastModifiedTheOriginDidNotLetUsStoreIsNoValidator: Cache-Control private="Last-Modified"
// (or no-cache=) strips the field from what is stored and served; it is not kept apart either,
// so the entry has no validator, and a revalidation does not send it.
func TestALastModifiedTheOriginDidNotLetUsStoreIsNoValidator(t *testing.T) {
	for _, cc := range []string{`public, max-age=60, private="Last-Modified"`, `public, max-age=60, no-cache="Last-Modified"`} {
		o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
			w.Header().Set("Cache-Control", cc)
			w.Header().Set("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
			io.WriteString(w, "body")
		})
		res, err := newTestFiller(t, newTestStore(t, nil), o).Fill(t.Context(), request("/lm"))
		if err != nil || res.Entry == nil {
			t.Fatalf("%s: Fill = %+v, %v", cc, res, err)
		}
		if e := res.Entry; e.LastModified() != "" || e.HasValidator() || fieldValues(e, "Last-Modified") != nil {
			t.Errorf("%s: stored Last-Modified %q, validator %v", cc, e.LastModified(), e.HasValidator())
		}
	}
}
