// Package tiers owns what swrproxy stores and where: the Entry type and its binary encoding, the
// in-process L1 (otter, weighed by bytes), the shared L2 (Redis), promotion from L2 to L1, the
// Redis circuit breaker and the short Redis locks that collapse fetches across instances.
// It knows nothing of HTTP semantics beyond the fields an Entry carries.
package tiers

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"slices"
	"strings"
	"time"
)

// Field is one response header field line. Repeated fields are kept as several Fields, in order.
type Field struct {
	Name, Value string
}

// Entry is one stored response (one variant of one URL). An Entry is immutable once stored:
// it is shared by concurrent readers, and its Body is handed to the network without copying.
//
// The fields are in the order a cache hit reads them: those it reads end by byte 192, the
// others (read by a store, a refresh, a Vary match, an origin failure, the admin pages) come
// after. With many keys each hit finds its entry out of the CPU's caches, and each line it
// touches is a load from memory: three, when the Entry starts on a 64-byte boundary (a bare
// Entry, NewEntry's block for an even number of fields up to 8 or for more than 16), four
// otherwise (every other block of an odd number; every block of 9 to 16 fields, which starts
// 8 bytes in, after the allocator's header). TestTheFieldsAHitReadsEndWithinThreeLines.
type Entry struct {
	// Line 1.
	Key    string  // the cache key of the URL (not of the variant)
	Header []Field // header fields to send, without hop-by-hop, Age, ETag or Content-Length
	Body   []byte

	// Line 2.
	ETag string // well-formed entity-tag, always set (the origin's Last-Modified is in Header)
	// Vary lists the canonical request header names the response varies on, VaryValues the
	// (normalised) values of those headers in the request that filled this variant.
	Vary   []string
	Stored time.Time // when the response was received (RFC 9111 response_time)

	// Line 3.
	Age   time.Duration // corrected initial age at Stored (RFC 9111 §4.2.3)
	Fresh time.Duration // freshness lifetime
	// StaleWhileRevalidate is how long after Fresh ends the entry is served while revalidated
	// (RFC 5861; StaleIfError, below, the other window).
	StaleWhileRevalidate time.Duration
	// Gen is the object generation this entry was filled under; an entry whose Gen is older than its
	// object's generation was invalidated (soft purge) and counts as stale.
	Gen uint64
	// Encodings are Body compressed once when stored (SWR_COMPRESS), each smaller than Body;
	// the request path sends the one the client accepts best. Body is then the identity form.
	Encodings []Encoding
	// Status is the HTTP status code (an int32 beside the flags below: the struct fits a smaller
	// size class, which every stored object pays).
	Status int32
	// Guessed reports whether Fresh is swrproxy's guess (the RFC 9111 §4.2.2 Last-Modified
	// heuristic or SWR_DEFAULT_TTL) for a response the origin did not make shareable with
	// requests that carry cookies (httpcache.Decision.Guessed): a request with Cookie gets it
	// only once the origin confirmed it for that request (a 304).
	Guessed bool
	// OriginETag reports whether ETag came from the origin (else swrproxy computed it from the
	// body, and sending it to the origin as If-None-Match would be pointless).
	OriginETag bool
	// AnyEncoding reports whether Body is the identity form fetched for every Accept-Encoding
	// (the fill asked the origin for identity, and swrproxy negotiates the content coding
	// itself): Accept-Encoding does not select this variant, even if the origin varies on it
	// (Matches skips it), since every client can be served from it.
	AnyEncoding bool

	// Line 4.
	VaryValues []string
	Tags       []string // Surrogate-Key values, never sent to clients
	// StaleIfError is how long after Fresh ends the entry may stand in for a failing origin.
	StaleIfError time.Duration
	// ReqHeader holds the request fields a background refresh replays to the origin, so that it
	// asks the same question as the client request that filled the entry (no Cookie, no
	// Authorization, no conditional fields); nil for none. Never modified: the entries one kind
	// of client filled share one list (refresh interns it). A pointer rather than a slice: 16
	// bytes less, which keeps the Entry in the 256-byte size class. Replayed returns it.
	ReqHeader *[]Field
}

// Encoding is one stored content coding of an entry's body.
type Encoding struct {
	Coding string // "gzip" or "br", as in Content-Encoding
	ETag   string // the entity-tag of this representation, derived from the entry's
	Body   []byte
}

// Encoded returns the stored encoding of e in coding, or nil. It does not allocate.
func (e *Entry) Encoded(coding string) *Encoding {
	for i := range e.Encodings {
		if e.Encodings[i].Coding == coding {
			return &e.Encodings[i]
		}
	}
	return nil
}

// keepForRevalidation is how long, at least, an entry with a validator is kept after it goes
// stale (its stale windows may keep it longer), so that the next request can revalidate it with a 304 instead of a full transfer
// (and a no-cache response is kept at all).
const keepForRevalidation = 5 * time.Minute

// HasValidator reports whether the origin can answer a conditional request for e with a 304.
func (e *Entry) HasValidator() bool { return e.OriginETag || e.LastModified() != "" }

// LastModified returns the origin's Last-Modified among the stored fields, or "". (Kept there
// only: a field of its own cost every entry 16 bytes and the 288-byte size class.) A
// Last-Modified the origin did not let the cache store (Cache-Control: no-cache="Last-Modified"
// or private="Last-Modified", or a policy's strip) is no validator: it is not kept at all.
func (e *Entry) LastModified() string { return e.Field("Last-Modified") }

// Field returns the value of the first stored field named name (canonical form), or "".
func (e *Entry) Field(name string) string {
	for _, f := range e.Header {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// Replayed returns the request fields a refresh of e replays (ReqHeader), nil for none.
func (e *Entry) Replayed() []Field {
	if e.ReqHeader == nil {
		return nil
	}
	return *e.ReqHeader
}

// CurrentAge returns the entry's age at now (RFC 9111 §4.2.3).
func (e *Entry) CurrentAge(now time.Time) time.Duration {
	a := e.Age + now.Sub(e.Stored)
	if a < 0 {
		return 0
	}
	return a
}

// Expires returns when the entry can no longer be used at all: freshness plus the longer stale
// window, or, for an entry with a validator, at least keepForRevalidation after it went stale.
func (e *Entry) Expires() time.Time {
	life := e.Fresh + max(e.StaleWhileRevalidate, e.StaleIfError)
	if e.HasValidator() {
		life = max(life, e.Fresh+keepForRevalidation)
	}
	return e.Stored.Add(life - e.Age)
}

// UsableOnError reports whether e may still be served at now in place of an origin failure:
// within its stale-if-error window (RFC 5861 §4).
func (e *Entry) UsableOnError(now time.Time) bool {
	return e.CurrentAge(now) < e.Fresh+e.StaleIfError
}

// StaleAt returns when the entry stops being fresh.
func (e *Entry) StaleAt() time.Time {
	return e.Stored.Add(e.Fresh - e.Age)
}

// Size is the entry's weight in bytes: body, header text and a fixed overhead.
func (e *Entry) Size() int {
	n := 200 + len(e.Key) + len(e.Body) + len(e.ETag)
	for _, f := range e.Header {
		n += len(f.Name) + len(f.Value) + 32
	}
	for _, s := range e.Vary {
		n += len(s) + 16
	}
	for _, s := range e.VaryValues {
		n += len(s) + 16
	}
	for _, s := range e.Tags {
		n += len(s) + 16
	}
	for _, f := range e.Replayed() {
		n += len(f.Name) + len(f.Value) + 32
	}
	for _, c := range e.Encodings {
		n += len(c.Coding) + len(c.ETag) + len(c.Body) + 48
	}
	return n
}

// VariantID names e among the variants of its key: VariantID of its vary names and values, ""
// for a response that varies on nothing. Refresh jobs and the hot-key tracker key their work by it.
func (e *Entry) VariantID() string {
	return VariantID(e.Vary, func(name string) string { return e.VaryValues[slices.Index(e.Vary, name)] })
}

// VariantID names, among the variants of a key, the one for a request whose values of the fields
// names (a response's Vary) value gives, normalised as at fill time: each name and value
// followed by a NUL byte (neither holds one), "" for no names. A stored variant's
// Entry.VariantID is the same name; the refetch of a variant collapses under it.
func VariantID(names []string, value func(name string) string) string {
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(0)
		b.WriteString(value(n))
		b.WriteByte(0)
	}
	return b.String()
}

// Matches reports whether the entry is the variant for a request whose header values are given by
// value (called with each name of e.Vary; it returns the normalised value, as at fill time).
// An AnyEncoding entry matches whatever the request's Accept-Encoding.
func (e *Entry) Matches(value func(name string) string) bool {
	for i, name := range e.Vary {
		if e.AnyEncoding && name == "Accept-Encoding" {
			continue
		}
		if value(name) != e.VaryValues[i] {
			return false
		}
	}
	return true
}

// Object is everything stored under one cache key: the variants of the URL (one when the origin
// sends no Vary) and the generation that invalidations bump. Objects are immutable; changes make
// a new Object (copy on write), so readers never lock.
type Object struct {
	Key      string
	Gen      uint64
	Variants []*Entry
	// Pass marks a URL whose responses are not cacheable ("hit-for-pass"): requests go straight
	// to the origin, uncollapsed, until the marker expires. Pass objects live in L1 only.
	Pass bool
	// block marks an object oneVariant allocated, whose block holds a memo slot after it (Memo).
	block bool

	// size and expires (Unix ns) are narrow so that an Object fits the 64-byte size class: one
	// per stored key.
	size    int32
	expires int64
}

// maxVariants bounds the variants kept per URL (and Options.ObjectMaxBytes their bytes), so a
// client cycling through header values
// cannot grow one object without limit.
const maxVariants = 32

// objectOverhead is what an Object costs in L1 besides its key and variants (the struct and
// otter's node, measured): what a tombstone or a hit-for-pass mark weighs with its key.
const objectOverhead = 200

func newObject(key string, gen uint64, variants []*Entry) *Object {
	if len(variants) == 1 {
		return oneVariant(key, gen, variants[0]) // the common case: the list in the object's block
	}
	o := &Object{}
	o.init(key, gen, variants)
	return o
}

func (o *Object) init(key string, gen uint64, variants []*Entry) {
	size := objectOverhead + len(key)
	*o = Object{Key: key, Gen: gen, Variants: variants}
	for _, e := range variants {
		size += e.Size()
		if x := e.Expires().UnixNano(); x > o.expires {
			o.expires = x
		}
	}
	o.size = int32(min(size, math.MaxInt32)) // objects are bounded far below (ObjectMaxBytes)
}

// Size is the object's weight in bytes.
func (o *Object) Size() int { return int(o.size) }

// expiresAt is when the object's last variant can no longer be used at all.
func (o *Object) expiresAt() time.Time { return time.Unix(0, o.expires) }

// Variant returns the variant matching the request, or nil. value returns the request's
// normalised value of a header name.
func (o *Object) Variant(value func(name string) string) *Entry {
	for _, e := range o.Variants {
		if e.Matches(value) {
			return e
		}
	}
	return nil
}

// with returns a copy of o in which e replaces the variant with the same vary values, or is added.
// Variants that have expired at now are dropped, and the oldest go when there are too many.
// At most maxBytes of variants are kept (e always).
func (o *Object) with(e *Entry, now time.Time, maxBytes int64) *Object {
	vs := make([]*Entry, 0, len(o.Variants)+1)
	vs = append(vs, e)
	total := int64(e.Size())
	for _, v := range o.Variants { // the most recently stored first
		if sameVariant(v, e) || !v.Expires().After(now) || len(vs) >= maxVariants || total+int64(v.Size()) > maxBytes {
			continue
		}
		vs = append(vs, v)
		total += int64(v.Size())
	}
	return newObject(o.Key, max(o.Gen, e.Gen), vs)
}

func sameVariant(a, b *Entry) bool {
	if len(a.Vary) != len(b.Vary) {
		return false
	}
	for i := range a.Vary {
		if a.Vary[i] != b.Vary[i] || a.VaryValues[i] != b.VaryValues[i] {
			return false
		}
	}
	return true
}

// variantField is the Redis hash field that holds a variant: "v:" and a digest of its vary names
// and values, so that no request value (a language, a token) appears in Redis in clear, and a
// change of the origin's Vary list makes old variants unreachable instead of wrong. Names and
// values are length-prefixed, so different lists never encode alike. Two lists sharing a digest
// (128 bits) would only overwrite each other: a read still checks the stored values (Matches).
// The one variant of a response without Vary is "v:" alone.
func variantField(e *Entry) string {
	if len(e.Vary) == 0 {
		return variantPrefix
	}
	n := 0
	for i := range e.Vary {
		n += len(e.Vary[i]) + len(e.VaryValues[i]) + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	for i := range e.Vary {
		b = binary.AppendUvarint(b, uint64(len(e.Vary[i])))
		b = append(b, e.Vary[i]...)
		b = binary.AppendUvarint(b, uint64(len(e.VaryValues[i])))
		b = append(b, e.VaryValues[i]...)
	}
	sum := sha256.Sum256(b)
	return variantPrefix + hex.EncodeToString(sum[:16])
}

// variantPrefix starts the hash field of every variant; the other fields are "g" (the
// generation) and "o" (the variants' order, see setScript).
const variantPrefix = "v:"
