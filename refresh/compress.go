package refresh

// Compression stored once (SWR_COMPRESS): a fill asks the origin for the identity form, and a
// compressible body is encoded with gzip and brotli when it is stored, so that every hit sends
// the coding its client accepts without compressing anything again.

import (
	"bytes"
	"math/bits"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
	"github.com/swrproxy/swrproxy/tiers"
)

// Compression says which codings the filler stores besides a body's identity form. The zero
// value stores none, and a fill forwards the client's Accept-Encoding (normalised) as before.
type Compression struct {
	// Codings are the codings to store: httpcache.CodingBrotli, httpcache.CodingGzip.
	Codings []string
	// MinBytes: smaller bodies are stored as they are (SWR_COMPRESS_MIN_BYTES).
	MinBytes int
}

// MaxCompressBytes bounds the bodies compressed (larger ones are stored as they are):
// compressing 1 MiB of JSON costs about 8 ms with gzip and 19 ms with brotli at the levels below
// (BenchmarkCompressLevels), which every waiter of the fill waits.
const MaxCompressBytes = 1 << 20

// Levels: chosen for the time a fill's waiters wait, not for the last percent (README:
// Compression has the figures). gzip 6 (zlib's default) costs 0.07 ms on 16 KiB of JSON and 0.9
// ms on 128 KiB, gzip 9 five to eight times that for 1 to 2 % less; brotli 4 costs 0.3 and 2.1
// ms and is smaller than brotli 5 and 6 on JSON, which cost 1.5 times as much.
const (
	gzipLevel   = 6
	brotliLevel = 4
)

// keepRatio: an encoding is kept only if it is smaller than this share of the identity body;
// a coding that saves less costs the client a decode for little.
const keepRatio = 0.9

// reasonEncoded is why a response is not stored: the origin encoded it although the fill asked
// for identity, and said it varies on Accept-Encoding, so a variant could be neither keyed on
// what the fill asked nor served to every client (see storable).
const reasonEncoded = "content-encoding"

func (c Compression) on() bool { return len(c.Codings) > 0 }

// compressCounters count the bodies stored encoded, per coding, and the bytes they save.
type compressCounters struct {
	gzip, br           atomic.Int64
	gzipSaved, brSaved atomic.Int64
	busy               atomic.Int64 // bodies stored uncompressed: every compression slot was taken
}

// identityRequest returns r asking the origin for the identity form when compression is on: one
// fill serves every Accept-Encoding, since swrproxy encodes the body itself. (Without a field
// the origin could pick any coding, RFC 9110 §12.5.3; the upstream client adds none.)
func (f *Filler) identityRequest(r *fill.Request) *fill.Request {
	if !f.Compress.on() || r.Header.Get("Accept-Encoding") == "identity" {
		return r
	}
	out := *r
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	out.Header.Set("Accept-Encoding", "identity")
	return &out
}

// originEncoded reports whether h, a response header, names a content coding other than identity.
func originEncoded(h http.Header) bool { return httpcache.Encoded(h.Values("Content-Encoding")) }

// unkeyableEncoding reports whether a response to an identity fill r (compression on) must not be
// stored: the origin encoded it anyway and varies on Accept-Encoding. Keyed on what the fill
// asked (identity) it would be served encoded to clients that asked for identity, and every
// other client's lookup would miss it and fill again; so it is not stored, and load asks again
// with the client's Accept-Encoding (encodesMemo). An encoded response that does not vary is
// stored as it came, as without compression.
func (f *Filler) unkeyableEncoding(r *fill.Request, h http.Header) bool {
	if !f.Compress.on() || r.Header.Get("Accept-Encoding") != "identity" || !originEncoded(h) {
		return false
	}
	names, _ := httpcache.VaryNames(h.Values("Vary"))
	return slices.Contains(names, "Accept-Encoding")
}

// compress adds the stored codings to e, a new entry for a response with header h (after the
// policy's edits), when compression is on: e becomes AnyEncoding when its body is the identity
// form, and gets an encoding of each coding that saves enough, for a compressible type within
// the size bounds, unless the origin said no-transform (RFC 9110 §7.7, RFC 9111 §5.2.2.6).
//
// Every identity body of a compressible type lists Accept-Encoding in its stored Vary (newEntry
// adds it), coded or not, compression on or off: swrproxy, or the proxy in front (the shipped
// nginx gzips what swrproxy did not, with gzip_vary off so that Vary is not named twice), may
// send it encoded.
func (f *Filler) compress(e *tiers.Entry, h http.Header) {
	if originEncoded(h) {
		return
	}
	c := f.Compress
	if !c.on() {
		return
	}
	e.AnyEncoding = true
	if !httpcache.IdentityCompressible(h) || len(e.Body) < max(c.MinBytes, 1) || len(e.Body) > MaxCompressBytes ||
		httpcache.ParseCacheControl(strings.Join(h.Values("Cache-Control"), ", ")).NoTransform ||
		digested(h) {
		return
	}
	// At most compressSlots fills compress at once, whatever clients send (each misses a new
	// key, or is not collapsed): the others store the identity form alone, which the proxy in
	// front may gzip per reply. So the CPU and the encoders' memory are bounded.
	slots := f.compressSlots()
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	default:
		f.compressStats.busy.Add(1)
		return
	}
	var kept [2]tiers.Encoding // gzip and br: the list is allocated once (appending allocated twice)
	encs := kept[:0]
	for _, coding := range c.Codings {
		b := encode(coding, e.Body)
		if b == nil || float64(len(b)) >= keepRatio*float64(len(e.Body)) {
			continue
		}
		encs = append(encs, tiers.Encoding{Coding: coding, ETag: httpcache.EncodingTag(e.ETag, coding), Body: b})
		saved := int64(len(e.Body) - len(b))
		switch coding {
		case httpcache.CodingGzip:
			f.compressStats.gzip.Add(1)
			f.compressStats.gzipSaved.Add(saved)
		case httpcache.CodingBrotli:
			f.compressStats.br.Add(1)
			f.compressStats.brSaved.Add(saved)
		}
	}
	if len(encs) > 0 {
		e.Encodings = slices.Clone(encs)
		e.Header = slices.DeleteFunc(e.Header, func(fl tiers.Field) bool {
			return fl.Name == "Content-Encoding" // identity: the request path sets a coded reply's
		})
	}
}

// compressSlots bounds the fills of f compressing at once: half the processors, at least one.
func (f *Filler) compressSlots() chan struct{} {
	f.slotsOnce.Do(func() { f.slots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)) })
	return f.slots
}

// digested reports whether h carries a digest or checksum of the identity body (Content-MD5,
// Content-Digest, Repr-Digest, RFC 9530): a coded reply would carry one that does not hold, so
// such a body is not compressed.
func digested(h http.Header) bool {
	return h.Get("Content-Md5") != "" || h.Get("Content-Digest") != "" || h.Get("Repr-Digest") != ""
}

// keepEncodings gives e, the renewal of old by a 304 (same body), old's stored codings, tagged
// after e's entity-tag (a 304 may change its form).
func keepEncodings(e, old *tiers.Entry) {
	e.AnyEncoding = old.AnyEncoding
	if len(old.Encodings) == 0 {
		return
	}
	e.Encodings = make([]tiers.Encoding, len(old.Encodings))
	for i, c := range old.Encodings {
		e.Encodings[i] = tiers.Encoding{Coding: c.Coding, ETag: httpcache.EncodingTag(e.ETag, c.Coding), Body: c.Body}
	}
	e.Header = slices.DeleteFunc(e.Header, func(fl tiers.Field) bool { return fl.Name == "Content-Encoding" })
}

// Encoders are pooled: a gzip writer holds about 800 KiB of state, a brotli one at level 4
// a few hundred.
var (
	gzipWriters   sync.Pool
	brotliWriters [25]sync.Pool // by window bits
	encodeBufs    = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

// encode returns body in coding, in a slice of its exact size (the entry keeps it for its
// life), or nil for an unknown coding.
func encode(coding string, body []byte) []byte {
	buf := encodeBufs.Get().(*bytes.Buffer)
	defer encodeBufs.Put(buf)
	buf.Reset()
	switch coding {
	case httpcache.CodingGzip:
		w, _ := gzipWriters.Get().(*gzip.Writer)
		if w == nil {
			w, _ = gzip.NewWriterLevel(buf, gzipLevel)
		} else {
			w.Reset(buf)
		}
		w.Write(body) // writes to a bytes.Buffer do not fail
		w.Close()
		gzipWriters.Put(w)
	case httpcache.CodingBrotli:
		// A window no larger than the body (brotli's default is 4 MiB): its state, kept in the
		// pool, is a few times the window.
		win := min(max(bits.Len(uint(len(body))), 10), 24)
		w, _ := brotliWriters[win].Get().(*brotli.Writer)
		if w == nil {
			w = brotli.NewWriterOptions(buf, brotli.WriterOptions{Quality: brotliLevel, LGWin: win})
		} else {
			w.Reset(buf)
		}
		w.Write(body)
		w.Close()
		brotliWriters[win].Put(w)
	default:
		return nil
	}
	return bytes.Clone(buf.Bytes())
}
