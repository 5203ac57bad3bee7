package tiers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
	"unsafe"

	"github.com/swrproxy/swrproxy/httpcache"
)

// codecVersion leads every encoded entry. Bump it (and the version in KeyPrefix) when the layout changes;
// an entry of another version decodes as ErrCorrupt and is treated as a miss.
const codecVersion = 4

// ErrCorrupt reports an L2 value that is not an entry of this version: truncated, altered or foreign.
var ErrCorrupt = errors.New("corrupt entry")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encode returns the binary form of e: a version byte, the fields as varints and length-prefixed
// bytes, and a CRC-32C of all that.
func encode(e *Entry) []byte { return encodeWith(e, e.LastModified()) }

// encodeWith is encode with lastModified in the Last-Modified slot: a field of its own in
// earlier versions (which wrote it before a policy's or the origin's strip), kept in the format
// so that versions can share a Redis; decode ignores it (Entry.LastModified reads the fields).
func encodeWith(e *Entry, lastModified string) []byte {
	b := make([]byte, 0, e.Size()+64)
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, e.Gen)
	b = binary.AppendUvarint(b, uint64(e.Status))
	b = binary.AppendVarint(b, e.Stored.UnixNano())
	b = binary.AppendVarint(b, int64(e.Age))
	b = binary.AppendVarint(b, int64(e.Fresh))
	b = binary.AppendVarint(b, int64(e.StaleWhileRevalidate))
	b = binary.AppendVarint(b, int64(e.StaleIfError))
	b = appendString(b, e.Key)
	b = appendString(b, e.ETag)
	b = appendString(b, lastModified)
	b = appendBool(b, e.OriginETag)
	b = appendBool(b, e.Guessed)
	b = appendFields(b, e.Replayed())
	b = appendStrings(b, e.Vary)
	b = appendStrings(b, e.VaryValues)
	b = appendStrings(b, e.Tags)
	b = appendFields(b, e.Header)
	b = binary.AppendUvarint(b, uint64(len(e.Body)))
	b = append(b, e.Body...)
	b = appendBool(b, e.AnyEncoding)
	b = binary.AppendUvarint(b, uint64(len(e.Encodings)))
	for _, c := range e.Encodings {
		b = appendString(b, c.Coding)
		b = appendString(b, c.ETag)
		b = appendString(b, unsafeString(c.Body))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendFields(b []byte, fs []Field) []byte {
	b = binary.AppendUvarint(b, uint64(len(fs)))
	for _, f := range fs {
		b = appendString(b, f.Name)
		b = appendString(b, f.Value)
	}
	return b
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// decode parses the output of encode. Any other input, including one of another codec version,
// returns an error wrapping ErrCorrupt; it never panics.
//
// The entry's Body, its codings' bodies and entity-tags, its own entity-tag and its fields,
// response and replayed (the bulk of it), alias b, which the caller must never modify: a
// promoted entry then costs b and a few slices, not a copy of every string beside b. The
// strings that may outlive the entry (its tags, Vary names and values, in indexes and queued
// jobs) are copies, so that they do not keep b alive. Its Key views b too: the caller, who asked
// for a key, checks they are equal and keeps its own.
func decode(b []byte) (*Entry, error) {
	e, _, err := decodeSlot(b)
	return e, err
}

// decodeSlot is decode that also returns the Last-Modified slot encodeWith wrote.
func decodeSlot(b []byte) (*Entry, string, error) {
	if len(b) < 5 {
		return nil, "", fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	if b[0] != codecVersion {
		return nil, "", fmt.Errorf("%w: version %d", ErrCorrupt, b[0])
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, "", fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	d := decoder{b: body[1:]}
	var v Entry // what precedes the fields, until the Entry is allocated with them
	v.Gen = d.uvarint()
	status := d.uvarint()
	v.Stored = time.Unix(0, d.varint())
	v.Age = time.Duration(d.varint())
	v.Fresh = time.Duration(d.varint())
	v.StaleWhileRevalidate = time.Duration(d.varint())
	v.StaleIfError = time.Duration(d.varint())
	v.Key = d.view()
	v.ETag = d.view()
	lastModified := d.view()
	v.OriginETag = d.bool()
	v.Guessed = d.bool()
	if fs := d.fields(); fs != nil {
		v.ReqHeader = &fs
	}
	v.Vary = d.strings()
	v.VaryValues = d.strings()
	v.Tags = d.strings()
	n := d.count(2)
	e := NewEntry(n)
	fs := e.Header
	*e = v
	for range n {
		fs = append(fs, Field{d.view(), d.view()})
	}
	if n > 0 {
		e.Header = fs
	}
	e.Body = d.bytes()
	e.AnyEncoding = d.bool()
	e.Encodings = d.encodings()
	switch {
	case d.err != nil:
		return nil, "", d.err
	case len(d.b) != 0:
		return nil, "", fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	case status < 100 || status > 999:
		return nil, "", fmt.Errorf("%w: status %d", ErrCorrupt, status)
	case len(e.Vary) != len(e.VaryValues):
		return nil, "", fmt.Errorf("%w: %d vary names, %d values", ErrCorrupt, len(e.Vary), len(e.VaryValues))
	case e.Age < 0 || e.Fresh < 0 || e.StaleWhileRevalidate < 0 || e.StaleIfError < 0:
		return nil, "", fmt.Errorf("%w: negative duration", ErrCorrupt)
	case e.ETag == "":
		return nil, "", fmt.Errorf("%w: no etag", ErrCorrupt)
	case !sendable(e):
		// A value that would inject a field line into a reply or into a refresh's request (CR,
		// LF), or that parsers read differently (NUL): only a value written by something other
		// than swrproxy (its fills keep none) has one.
		return nil, "", fmt.Errorf("%w: a field or entity-tag that is not sendable", ErrCorrupt)
	}
	e.Status = int32(status) // 100 to 999
	return e, lastModified, nil
}

// sendable reports whether every field of e (stored and replayed) has a token for a name and a
// value that may be sent (RFC 9110 §5.5), and its entity-tags are sendable values too.
func sendable(e *Entry) bool {
	for _, fs := range [][]Field{e.Header, e.Replayed()} {
		for _, f := range fs {
			if !httpcache.IsToken(f.Name) || !httpcache.IsFieldValue(f.Value) {
				return false
			}
		}
	}
	if !httpcache.IsFieldValue(e.ETag) {
		return false
	}
	for _, c := range e.Encodings {
		if !httpcache.IsFieldValue(c.ETag) {
			return false
		}
	}
	return true
}

// encodings reads the stored codings of a body: each known (gzip or br), once, with a tag and
// a body that is not empty.
func (d *decoder) encodings() []Encoding {
	n := d.count(3)
	if n == 0 {
		return nil
	}
	if n > 2 { // gzip and br, each once: no list of a forged count
		d.fail("encoding")
		return nil
	}
	cs := make([]Encoding, n)
	for i := range cs {
		cs[i] = Encoding{Coding: d.coding(), ETag: d.view(), Body: d.bytes()}
		switch {
		case d.err != nil:
			return nil
		case cs[i].Coding == "", cs[i].ETag == "", len(cs[i].Body) == 0:
			d.fail("encoding")
			return nil
		}
		for _, prev := range cs[:i] {
			if prev.Coding == cs[i].Coding {
				d.fail("encoding")
				return nil
			}
		}
	}
	return cs
}

// unsafeString views b as a string (appendString only copies it; decode's view keeps it).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// decoder reads varints and length-prefixed strings; the first problem sticks in err and
// every later read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n > 1 && d.b[n-1] == 0 { // a zero last byte is an overlong form encode never writes
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 || n > 1 && d.b[n-1] == 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads an element count, each element taking at least minSize bytes, so a forged count
// cannot make decode allocate more than the input justifies.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minSize) {
		d.fail("count")
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("length")
		return nil
	}
	s := d.b[:n:n] // an append reallocates: the input may be a string's bytes, never written
	d.b = d.b[n:]
	return s
}

func (d *decoder) bool() bool {
	if len(d.b) == 0 || d.b[0] > 1 {
		d.fail("bool")
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

// fields reads field lines, viewed in the input: a refresh that replays them interns copies for
// the entry it stores (refresh's replayHeader).
func (d *decoder) fields() []Field {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	fs := make([]Field, n)
	for i := range fs {
		fs[i] = Field{d.view(), d.view()}
	}
	return fs
}

// string reads a string into a copy of its own.
func (d *decoder) string() string { return string(d.bytes()) }

// view reads a string that aliases the input.
func (d *decoder) view() string { return unsafeString(d.bytes()) }

// coding reads a content coding: "gzip" or "br" (the program's own strings), else "".
func (d *decoder) coding() string {
	switch c := d.bytes(); string(c) {
	case "gzip":
		return "gzip"
	case "br":
		return "br"
	}
	return ""
}

func (d *decoder) strings() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.string()
	}
	return ss
}
