package refresh

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/tiers"
)

// compressing is newTestFiller with SWR_COMPRESS=br,gzip and SWR_COMPRESS_MIN_BYTES=256.
func compressing(t *testing.T, s *tiers.Store, o *testOrigin) *Filler {
	f := newTestFiller(t, s, o)
	f.Compress = Compression{Codings: []string{"br", "gzip"}, MinBytes: 256}
	return f
}

// decodeAs decodes b, encoded in coding.
func decodeAs(t *testing.T, coding string, b []byte) []byte { return testenv.Decode(t, coding, b) }

func TestCompressibleBodyIsStoredWithGzipAndBrotliOnce(t *testing.T) {
	body := jsonBody(16 << 10)
	var mu sync.Mutex
	var asked []string
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
		mu.Lock()
		asked = append(asked, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"j1"`)
		w.Header().Set("Vary", "Origin")
		w.Write(body)
	})
	s := newTestStore(t, nil)
	f := compressing(t, s, o)
	r := request("/j")
	r.Header.Set("Accept-Encoding", "gzip") // the client's, normalised: not what the origin is asked
	res, err := f.Fill(t.Context(), r)
	if err != nil || res.Entry == nil {
		t.Fatalf("Fill = %+v, %v", res, err)
	}
	e := res.Entry
	if !slices.Equal(asked, []string{"identity"}) {
		t.Errorf("the origin was asked with Accept-Encoding %q, want [identity]", asked)
	}
	if !e.AnyEncoding || !bytes.Equal(e.Body, body) {
		t.Errorf("AnyEncoding = %v, identity body of %d bytes; want true and the origin's %d", e.AnyEncoding, len(e.Body), len(body))
	}
	if len(e.Encodings) != 2 {
		t.Fatalf("Encodings = %d, want br and gzip", len(e.Encodings))
	}
	for _, c := range []struct{ coding, tag string }{{"br", `"j1:swr-br"`}, {"gzip", `"j1:swr-gzip"`}} {
		enc := e.Encoded(c.coding)
		if enc == nil || enc.ETag != c.tag || len(enc.Body) >= len(body)*9/10 {
			t.Errorf("%s: %+v; want tag %s and a body under 0.9 of the identity's", c.coding, enc, c.tag)
			continue
		}
		if got := decodeAs(t, c.coding, enc.Body); !bytes.Equal(got, body) {
			t.Errorf("%s body decodes to %d bytes, not the origin's", c.coding, len(got))
		}
	}
	if got := fieldValues(e, "Vary"); !slices.Equal(got, []string{"Origin", "Accept-Encoding"}) {
		t.Errorf("stored Vary = %q, want the origin's and Accept-Encoding once", got)
	}
	if st := f.Stats(); st.CompressedGzip != 1 || st.CompressedBrotli != 1 || st.SavedGzip <= 0 || st.SavedBrotli <= 0 {
		t.Errorf("Stats = %+v, want one body of each coding and bytes saved", st)
	}
	// Stored codings weigh in L1.
	plain := *e
	plain.Encodings = nil
	if e.Size() < plain.Size()+len(e.Encodings[0].Body)+len(e.Encodings[1].Body) {
		t.Errorf("Size = %d, without the codings' bytes", e.Size())
	}
}

func TestOnlyCompressibleBodiesThatSaveAreEncoded(t *testing.T) {
	noise := make([]byte, 4096)
	rand.NewChaCha8([32]byte{3, 4}).Read(noise)
	json := jsonBody(4096)
	tests := []struct {
		name   string
		header map[string]string
		body   []byte
		want   []string // codings stored
		anyEnc bool
	}{
		{"json", map[string]string{"Content-Type": "application/json"}, json, []string{"br", "gzip"}, true},
		{"problem+json", map[string]string{"Content-Type": "application/problem+json"}, json, []string{"br", "gzip"}, true},
		{"svg", map[string]string{"Content-Type": "image/svg+xml"}, json, []string{"br", "gzip"}, true},
		{"png", map[string]string{"Content-Type": "image/png"}, json, nil, true},
		{"no type", map[string]string{"Content-Type": ""}, json, nil, true}, // "": none, not sniffed
		{"below the threshold", map[string]string{"Content-Type": "text/plain"}, json[:255], nil, true},
		{"at the threshold", map[string]string{"Content-Type": "text/plain"}, bytes.Repeat([]byte("a"), 256), []string{"br", "gzip"}, true},
		{"no-transform", map[string]string{"Content-Type": "application/json", "Cache-Control": "max-age=60, no-transform"}, json, nil, true},
		{"identity coding", map[string]string{"Content-Type": "application/json", "Content-Encoding": "identity"}, json, []string{"br", "gzip"}, true},
		{"not smaller", map[string]string{"Content-Type": "text/plain"}, noise, nil, true},
		{"a digest of the identity body", map[string]string{"Content-Type": "application/json", "Content-Digest": "sha-256=:AAAA:"}, json, nil, true},
		{"a checksum of the identity body", map[string]string{"Content-Type": "application/json", "Repr-Digest": "sha-256=:AAAA:"}, json, nil, true},
		{"encoded by the origin", map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip"}, json, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
				w.Header().Set("Cache-Control", "max-age=60")
				for k, v := range tt.header {
					w.Header().Set(k, v)
					if v == "" {
						w.Header()[k] = nil // net/http sends no Content-Type, and sniffs none
					}
				}
				w.Write(tt.body)
			})
			s := newTestStore(t, nil)
			res, err := compressing(t, s, o).Fill(t.Context(), request("/x"))
			if err != nil || res.Entry == nil {
				t.Fatalf("Fill = %+v, %v", res, err)
			}
			var got []string
			for _, c := range res.Entry.Encodings {
				got = append(got, c.Coding)
			}
			if !slices.Equal(got, tt.want) || res.Entry.AnyEncoding != tt.anyEnc {
				t.Errorf("codings %q, AnyEncoding %v; want %q, %v", got, res.Entry.AnyEncoding, tt.want, tt.anyEnc)
			}
			// Every compressible identity body says it varies: swrproxy or nginx may encode it.
			wantVary := tt.anyEnc && tt.name != "png" && tt.name != "no type"
			vary := slices.Contains(fieldValues(res.Entry, "Vary"), "Accept-Encoding")
			if vary != wantVary {
				t.Errorf("stored Vary %q: Accept-Encoding listed %v, want %v", fieldValues(res.Entry, "Vary"), vary, wantVary)
			}
			if len(tt.want) > 0 && fieldValues(res.Entry, "Content-Encoding") != nil {
				t.Errorf("stored Content-Encoding %q with codings", fieldValues(res.Entry, "Content-Encoding"))
			}
		})
	}
}

func TestVaryIsMergedWithoutDuplicates(t *testing.T) {
	for _, vary := range [][]string{{"accept-encoding"}, {"Accept-Language, Accept-Encoding"}, {"Origin", "Accept-Encoding"}} {
		o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Type", "text/html")
			w.Header()["Vary"] = vary
			w.Write(jsonBody(2048))
		})
		s := newTestStore(t, nil)
		res, err := compressing(t, s, o).Fill(t.Context(), request("/v"))
		if err != nil || res.Entry == nil || len(res.Entry.Encodings) == 0 {
			t.Fatalf("Vary %q: Fill = %+v, %v", vary, res, err)
		}
		if got := fieldValues(res.Entry, "Vary"); !slices.Equal(got, vary) {
			t.Errorf("origin Vary %q: stored %q, want it unchanged", vary, got)
		}
	}
}

// TestAnOriginThatEncodesWhateverItIsAskedIsStoredPerCoding: asked for identity, it sends gzip
// and says it varies on Accept-Encoding. Keyed on identity, that variant would be gzip for
// identity clients, and every gzip client's lookup would miss it: so the fill asks again as the
// client asked and stores that variant keyed on its Accept-Encoding, as without compression,
// and remembers the key, so its next fills ask so at once (one origin request, not two).
func TestAnOriginThatEncodesWhateverItIsAskedIsStoredPerCoding(t *testing.T) {
	o, asked := encodesAnyway(t, false)
	s := newTestStore(t, nil)
	f := compressing(t, s, o)
	for i := range 2 {
		if i == 1 {
			s.Delete(t.Context(), "/e") // a later fill of the key
		}
		res, err := f.Fill(t.Context(), gzipRequest("/e"))
		if err != nil || res.Entry == nil {
			t.Fatalf("fill %d = %+v, %v; want the gzip variant stored", i, res, err)
		}
		e := res.Entry
		if e.AnyEncoding || len(e.Encodings) != 0 || !slices.Equal(e.Vary, []string{"Accept-Encoding"}) || e.VaryValues[0] != "gzip" {
			t.Errorf("fill %d stored AnyEncoding %v, codings %d, Vary %q = %q; want the gzip variant as the origin sent it",
				i, e.AnyEncoding, len(e.Encodings), e.Vary, e.VaryValues)
		}
	}
	if got, want := asked(), []string{"identity", "gzip", "gzip"}; !slices.Equal(got, want) {
		t.Errorf("the origin was asked %q, want %q (identity once, then as the client asks)", got, want)
	}
}

func TestAnIdentityVariantOfAnOriginVaryingOnAcceptEncodingServesEveryClient(t *testing.T) {
	// The origin varies on Accept-Encoding (most compression middleware says so always); the fill
	// asked for identity, so the one variant is every client's: a gzip client's request matches
	// it instead of filling again (no miss loop).
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Write(jsonBody(2048))
	})
	s := newTestStore(t, nil)
	f := compressing(t, s, o)
	for _, enc := range []string{"br", "gzip", ""} {
		r := request("/m")
		r.Header.Set("Accept-Encoding", enc)
		r.Value = func(name string) string {
			if name == "Accept-Encoding" {
				return enc
			}
			return ""
		}
		if res, err := f.Fill(t.Context(), r); err != nil || res.Entry == nil || !res.Entry.Matches(r.Value) {
			t.Fatalf("Accept-Encoding %q: Fill = %+v, %v", enc, res, err)
		}
		if e := s.Peek("/m").Variant(r.Value); e == nil {
			t.Errorf("Accept-Encoding %q: the lookup finds no variant", enc)
		}
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin requests = %d, want 1 for every Accept-Encoding", n)
	}
	if n := len(s.Peek("/m").Variants); n != 1 {
		t.Errorf("variants = %d, want 1", n)
	}
}

func TestRevalidation304KeepsTheStoredCodings(t *testing.T) {
	o, _ := revalidatingOrigin(t, "max-age=60")
	s := newTestStore(t, nil)
	f := compressing(t, s, o)
	old := staleEntry("/r")
	old.AnyEncoding = true
	old.Header = slices.Insert(old.Header, 2, tiers.Field{Name: "Vary", Value: "Accept-Encoding"}) // as stored: sorted by name
	old.Encodings = []tiers.Encoding{{Coding: "gzip", ETag: `"v1:swr-gzip"`, Body: []byte("gz")}, {Coding: "br", ETag: `"v1:swr-br"`, Body: []byte("b")}}
	r := request("/r")
	r.Stale = old
	res, err := f.Fill(t.Context(), r)
	if err != nil || res.Entry == nil || !res.Revalidated {
		t.Fatalf("Fill = %+v, %v; want a renewal", res, err)
	}
	e := res.Entry
	if !e.AnyEncoding || len(e.Encodings) != 2 || e.Encoded("gzip").ETag != `"v1:swr-gzip"` || string(e.Encoded("br").Body) != "b" {
		t.Errorf("renewed codings = %+v (AnyEncoding %v), want old's", e.Encodings, e.AnyEncoding)
	}
	if got := fieldValues(e, "Vary"); !slices.Equal(got, []string{"Accept-Encoding"}) {
		t.Errorf("renewed Vary = %q", got)
	}
}

// TestA304RenewalOfAnEntryWhoseVaryIsStrippedStillVariesOnAcceptEncoding: the origin's
// no-cache="Vary" strips its Vary lines, not the one swrproxy adds for a compressible type; the
// renewal's merged fields hold that one, which the strip must not take away either.
func TestA304RenewalOfAnEntryWhoseVaryIsStrippedStillVariesOnAcceptEncoding(t *testing.T) {
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
		w.WriteHeader(http.StatusNotModified) // no Cache-Control: the stored one still applies
	})
	old := staleEntry("/r")
	old.Header = []tiers.Field{{Name: "Cache-Control", Value: `max-age=60, no-cache="Vary"`}, {Name: "Content-Type", Value: "application/json"},
		{Name: "Vary", Value: "Accept-Encoding"}}
	for _, f := range []*Filler{newTestFiller(t, newTestStore(t, nil), o), compressing(t, newTestStore(t, nil), o)} {
		r := request("/r")
		r.Stale = old
		res, err := f.Fill(t.Context(), r)
		if err != nil || res.Entry == nil || !res.Revalidated {
			t.Fatalf("Fill = %+v, %v; want a renewal", res, err)
		}
		if got := fieldValues(res.Entry, "Vary"); !slices.Equal(got, []string{"Accept-Encoding"}) {
			t.Errorf("compression %v: renewed Vary = %q, want Accept-Encoding", f.Compress.on(), got)
		}
	}
}

// TestA304WithAVaryOfItsOwnKeepsVaryingOnAcceptEncoding: a 304's Vary replaces the stored one
// (RFC 9111 §4.3.4); a compressible body still says it varies on Accept-Encoding too.
func TestA304WithAVaryOfItsOwnKeepsVaryingOnAcceptEncoding(t *testing.T) {
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		w.WriteHeader(http.StatusNotModified)
	})
	old := staleEntry("/r")
	old.Header = []tiers.Field{{Name: "Content-Type", Value: "application/json"}, {Name: "Vary", Value: "Accept-Encoding"}}
	r := request("/r")
	r.Stale = old
	res, err := newTestFiller(t, newTestStore(t, nil), o).Fill(t.Context(), r)
	if err != nil || res.Entry == nil || !res.Revalidated {
		t.Fatalf("Fill = %+v, %v; want a renewal", res, err)
	}
	if got := fieldValues(res.Entry, "Vary"); !slices.Equal(got, []string{"Accept-Language", "Accept-Encoding"}) {
		t.Errorf("renewed Vary = %q, want Accept-Language then Accept-Encoding", got)
	}
}

func TestWithoutCompressionTheFillForwardsTheNormalisedAcceptEncoding(t *testing.T) {
	var got string
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, n int64) {
		got = r.Header.Get("Accept-Encoding")
		w.Header().Set("Content-Type", "application/json")
		cacheable(w, r, n)
	})
	s := newTestStore(t, nil)
	r := request("/off")
	r.Header.Set("Accept-Encoding", "br")
	res, err := newTestFiller(t, s, o).Fill(t.Context(), r)
	if err != nil || res.Entry == nil || got != "br" || res.Entry.AnyEncoding || res.Entry.Encodings != nil {
		t.Fatalf("Fill = %+v, %v, origin asked with %q; want br forwarded and nothing encoded", res, err, got)
	}
	// nginx in front may gzip it: the compressible identity body says it varies.
	if v := fieldValues(res.Entry, "Vary"); !slices.Equal(v, []string{"Accept-Encoding"}) {
		t.Errorf("stored Vary = %q, want Accept-Encoding", v)
	}
}

// TestAtMostHalfTheProcessorsCompressAtOnce: when every compression slot is taken (as many fills
// compressing as the bound allows, whatever clients send), a fill stores the identity form
// alone, counted as busy, and does not wait; once a slot is free, bodies are compressed again.
func TestAtMostHalfTheProcessorsCompressAtOnce(t *testing.T) {
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, _ int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "application/json")
		w.Write(jsonBody(4096))
	})
	s := newTestStore(t, nil)
	f := compressing(t, s, o)
	slots := f.compressSlots()
	for range cap(slots) {
		slots <- struct{}{} // fills compressing elsewhere
	}
	res, err := f.Fill(t.Context(), request("/busy"))
	for range cap(slots) {
		<-slots
	}
	if err != nil || res.Entry == nil || len(res.Entry.Encodings) != 0 || !res.Entry.AnyEncoding {
		t.Fatalf("with every slot taken: %+v, %v; want the identity form stored alone", res, err)
	}
	if n := f.Stats().CompressBusy; n != 1 {
		t.Errorf("CompressBusy = %d, want 1", n)
	}
	res, err = f.Fill(t.Context(), request("/free"))
	if err != nil || res.Entry == nil || len(res.Entry.Encodings) != 2 {
		t.Fatalf("with a slot free: %+v, %v; want two codings", res, err)
	}
}
