package tiers

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

var roundTripTests = []struct { // TestEncodeThenDecodeGivesTheSameEntry and FuzzDecode loop over it
	name string
	e    *Entry
}{
	{"full", &Entry{
		Key:    "/api/prices?pair=ALGO-USD",
		Status: 200,
		Header: []Field{ // repeated names keep every value, in order
			{"Link", "</a.css>; rel=preload"},
			{"Content-Type", "application/octet-stream"},
			{"Link", "</b.js>; rel=preload"},
			{"Link", ""},
			{"X-Empty", ""},
			{"Last-Modified", "Tue, 15 Nov 1994 12:45:26 GMT"},
		},
		Body:                 []byte("\x00bin\x00ary\xff\x00\x00"),
		ETag:                 `"abc"`,
		Vary:                 []string{"Accept-Encoding", "Accept-Language"},
		VaryValues:           []string{"gzip", ""},
		Tags:                 []string{"asset-31566704", "prices", "caf\xc3\xa9"},
		Stored:               time.Unix(1_700_000_000, 123_456_789),
		Age:                  3*time.Second + 7,
		Fresh:                time.Minute,
		StaleWhileRevalidate: 30 * time.Second,
		StaleIfError:         time.Hour,
		Gen:                  math.MaxUint64,
		OriginETag:           true,
		Guessed:              true,
		ReqHeader:            &[]Field{{"Accept", "application/json"}, {"X-Forwarded-Proto", "https"}},
		AnyEncoding:          true,
		Encodings: []Encoding{
			{Coding: "br", ETag: `"abc-br"`, Body: []byte("\x8b\x02\x80bin")},
			{Coding: "gzip", ETag: `"abc-gzip"`, Body: []byte("\x1f\x8b\x08\x00")},
		},
	}},
	{"identity fetched for every Accept-Encoding, no coding saved enough", &Entry{Key: "/small", Status: 200, ETag: `W/"s"`,
		Stored: time.Unix(9, 0), Body: []byte("{}"), AnyEncoding: true}},
	{"minimal", &Entry{Status: 100, ETag: `W/""`, Stored: time.Unix(0, 0)}},
	{"largest status, stored before 1970", &Entry{Key: "k", Status: 999, ETag: `"x"`, Stored: time.Unix(0, math.MinInt64)}},
	{"stored at the end of int64 nanoseconds", &Entry{Key: "k", Status: 304, ETag: `"x"`, Stored: time.Unix(0, math.MaxInt64),
		Age: math.MaxInt64, Fresh: math.MaxInt64, StaleWhileRevalidate: math.MaxInt64, StaleIfError: math.MaxInt64}},
	{"big body", &Entry{Key: "/big", Status: 200, ETag: `"big"`, Stored: time.Unix(5, 0), Body: bytes.Repeat([]byte{0, 1, 0x80, 0xff}, 40_000)}},
}

// TestAnEntryOfAnEarlierVersionWithAStrippedLastModifiedDecodes: earlier versions wrote the
// origin's Last-Modified in a slot of its own, even when it was not among the stored fields (a
// policy or the origin's no-cache="Last-Modified" stripped it). Such a value is not corrupt (a
// Redis shared by both versions, as in a rolling upgrade, would have it deleted); the entry has
// the fields it stored, and no Last-Modified.
func TestAnEntryOfAnEarlierVersionWithAStrippedLastModifiedDecodes(t *testing.T) {
	e := &Entry{Key: "/k", Status: 200, ETag: `"x"`, Stored: time.Unix(9, 0), Header: []Field{{"Content-Type", "text/plain"}}}
	got, lastModified, err := decodeSlot(encodeWith(e, "Tue, 15 Nov 1994 12:45:26 GMT"))
	if err != nil {
		t.Fatal(err)
	}
	if d := entryDiff(got, e); d != "" || got.LastModified() != "" || lastModified != "Tue, 15 Nov 1994 12:45:26 GMT" {
		t.Errorf("decoded %s, Last-Modified %q, slot %q", d, got.LastModified(), lastModified)
	}
}

// TestADecodedEntryViewsTheStoredBytes: an entry promoted from L2 keeps the bytes Redis sent
// and views its key, body, codings, entity-tags and fields (response and replayed) in them
// instead of holding a second copy of each string (issue 14, bytes per object); what may outlive
// the entry in an index or a queued job (tags, Vary names and values) is copied, so as not to
// keep those bytes alive (Store.objectOf replaces the key with its own; a refresh interns the
// replayed fields it keeps).
func TestADecodedEntryViewsTheStoredBytes(t *testing.T) {
	b := encode(roundTripTests[0].e)
	e, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	inside := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		return p >= start && p < start+uintptr(len(b))
	}
	viewed := []string{e.Key, e.ETag, unsafe.String(unsafe.SliceData(e.Body), len(e.Body))}
	for _, f := range e.Header {
		viewed = append(viewed, f.Name, f.Value)
	}
	for _, c := range e.Encodings {
		viewed = append(viewed, c.ETag, unsafe.String(unsafe.SliceData(c.Body), len(c.Body)))
	}
	for _, f := range e.Replayed() {
		viewed = append(viewed, f.Name, f.Value)
	}
	for _, s := range viewed {
		if s != "" && !inside(s) {
			t.Errorf("%.40q is a copy of its own", s)
		}
	}
	// An entry and its fields are one block, as a fill allocates them (NewEntry).
	if len(e.Header) == 0 || uintptr(unsafe.Pointer(&e.Header[0])) != uintptr(unsafe.Pointer(e))+unsafe.Sizeof(Entry{}) {
		t.Error("the decoded entry's fields are not in its block")
	}
	copied := slices.Clone(e.Tags)
	copied = append(copied, e.Vary...)
	for _, s := range append(copied, e.VaryValues...) {
		if s != "" && inside(s) {
			t.Errorf("%.40q views the stored bytes: an index holding it would keep them alive", s)
		}
	}
	for _, c := range e.Encodings {
		if c.Coding != "gzip" && c.Coding != "br" || inside(c.Coding) {
			t.Errorf("coding %q is not the program's own string", c.Coding)
		}
	}
}

func TestEncodeThenDecodeGivesTheSameEntry(t *testing.T) {
	for _, tt := range roundTripTests {
		b := encode(tt.e)
		got, err := decode(b)
		if err != nil {
			t.Errorf("%s: decode(encode(e)) error: %v", tt.name, err)
			continue
		}
		if d := entryDiff(got, tt.e); d != "" {
			t.Errorf("%s: decode(encode(e)) differs: %s", tt.name, d)
		}
		if again := encode(got); !bytes.Equal(again, b) {
			t.Errorf("%s: encode(decode(b)) != b", tt.name)
		}
	}
}

// prefix is a valid encoding up to and including ReqHeader: version, Gen 0, status 200, Stored 0,
// the four durations 0, key "k", etag `"e"`, no Last-Modified, OriginETag and Guessed false, no ReqHeader. The forged inputs below continue it.
func prefix() []byte {
	b := []byte{codecVersion}
	b = binary.AppendUvarint(b, 0)   // Gen
	b = binary.AppendUvarint(b, 200) // Status
	for range 5 {                    // Stored, Age, Fresh, StaleWhileRevalidate, StaleIfError
		b = binary.AppendVarint(b, 0)
	}
	b = appendString(b, "k")
	b = appendString(b, `"e"`)
	b = appendString(b, "")
	return append(b, 0, 0, 0) // OriginETag false, Guessed false, no ReqHeader
}

// uv appends uvarints to b.
func uv(b []byte, xs ...uint64) []byte {
	for _, x := range xs {
		b = binary.AppendUvarint(b, x)
	}
	return b
}

// seal appends the checksum encode would write, so a forged body gets past the CRC.
func seal(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// reseal replaces the last four bytes of b with the checksum of the rest.
func reseal(b []byte) []byte {
	return seal(bytes.Clone(b[:len(b)-4]))
}

// withByte returns a copy of b with b[i] = c, resealed, so only that byte is wrong.
func withByte(b []byte, i int, c byte) []byte {
	b = bytes.Clone(b)
	b[i] = c
	return reseal(b)
}

// valid is an encoding decode accepts; the rows below derive their forgeries from it.
var valid = encode(roundTripTests[0].e)

var decodeRejectTests = []struct { // TestDecodeRejectsWhatEncodeDidNotWrite and FuzzDecode loop over it
	name string
	in   []byte
}{
	{"nil", nil},
	{"empty", []byte{}},
	{"four bytes", []byte{codecVersion, 0, 0, 0}},
	{"only a checksum", seal([]byte{codecVersion})},
	{"version 0", withByte(valid, 0, 0)},
	{"version 1 (before Guessed)", withByte(valid, 0, 1)},
	{"version 2 (before Surrogate-Control was stored)", withByte(valid, 0, 2)},
	{"version 3 (before stored codings)", withByte(valid, 0, 3)},
	{"version 5", withByte(valid, 0, 5)},
	{"version 255", withByte(valid, 0, 255)},
	{"checksum off by one bit", append(bytes.Clone(valid[:len(valid)-1]), valid[len(valid)-1]^1)},
	{"checksum zeroed", append(bytes.Clone(valid[:len(valid)-4]), 0, 0, 0, 0)},
	{"trailing byte, checksummed", seal(append(bytes.Clone(valid[:len(valid)-4]), 0))},
	{"trailing checksum", append(bytes.Clone(valid), valid[len(valid)-4:]...)},
	{"minimal entry without its body length", seal(uv(prefix(), 0, 0, 0, 0))},
	{"status 0", seal(uv(withStatus(0), 0, 0, 0, 0, 0, 0, 0))},
	{"status 99", seal(uv(withStatus(99), 0, 0, 0, 0, 0, 0, 0))},
	{"status 1000", seal(uv(withStatus(1000), 0, 0, 0, 0, 0, 0, 0))},
	{"status above int64", seal(uv(withStatus(math.MaxUint64), 0, 0, 0, 0, 0, 0, 0))},
	{"one vary name, no value", seal(uv(appendString(uv(prefix(), 1), "Accept"), 0, 0, 0, 0, 0, 0))},
	{"no vary name, one value", seal(uv(appendString(uv(prefix(), 0, 1), "en"), 0, 0, 0, 0, 0))},
	{"negative age", seal(uv(withDuration(0, -1), 0, 0, 0, 0, 0, 0, 0))},
	{"negative fresh", seal(uv(withDuration(1, -1), 0, 0, 0, 0, 0, 0, 0))},
	{"negative stale-while-revalidate", seal(uv(withDuration(2, math.MinInt64), 0, 0, 0, 0, 0, 0, 0))},
	{"negative stale-if-error", seal(uv(withDuration(3, -time.Hour), 0, 0, 0, 0, 0, 0, 0))},
	{"no etag", seal(uv(appendString(appendString(appendString(prefix()[:9], "k"), ""), ""), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))},
	{"origin-etag flag 2", seal(uv(append(appendString(appendString(appendString(prefix()[:9], "k"), `"e"`), ""), 2), 0, 0, 0, 0, 0, 0, 0, 0, 0))},
	{"guessed flag 2", seal(uv(append(appendString(appendString(appendString(prefix()[:9], "k"), `"e"`), ""), 0, 2), 0, 0, 0, 0, 0, 0, 0, 0))},
	{"gen as an overlong varint", seal(uv(append([]byte{codecVersion, 0x80, 0x00}, prefix()[2:]...), 0, 0, 0, 0, 0, 0, 0))},
	{"status as an overlong varint", seal(uv(append([]byte{codecVersion, 0, 0xc8, 0x81, 0x00}, prefix()[4:]...), 0, 0, 0, 0, 0, 0, 0))},
	{"body length as an overlong varint", seal(append(uv(prefix(), 0, 0, 0, 0), 0x80, 0x00))},
	{"gen overflows uint64", seal(append([]byte{codecVersion}, bytes.Repeat([]byte{0xff}, 10)...))},
	{"vary count beyond the input", seal(uv(prefix(), 1<<20))},
	{"vary count 2^62", seal(uv(prefix(), 1<<62))},
	{"vary count max", seal(uv(prefix(), math.MaxUint64))},
	{"tag count 2^40", seal(uv(prefix(), 0, 0, 1<<40))},
	{"header count 2^40", seal(uv(prefix(), 0, 0, 0, 1<<40))},
	{"header count one past the input", seal(uv(prefix(), 0, 0, 0, 3, 0, 0, 0, 0))},
	{"minimal entry without its encodings", seal(uv(prefix(), 0, 0, 0, 0, 0, 0))},
	{"any-encoding flag 2", seal(uv(prefix(), 0, 0, 0, 0, 0, 2, 0))},
	{"encoding count beyond the input", seal(uv(prefix(), 0, 0, 0, 0, 0, 1, 1<<20))},
	{"encoding count max", seal(uv(prefix(), 0, 0, 0, 0, 0, 0, math.MaxUint64))},
	{"unknown coding", seal(withEncodings(encodingRow{"deflate", `"e-deflate"`, "x"}))},
	{"coding in upper case", seal(withEncodings(encodingRow{"GZIP", `"e-gzip"`, "x"}))},
	{"coding without a tag", seal(withEncodings(encodingRow{"gzip", "", "x"}))},
	{"coding with an empty body", seal(withEncodings(encodingRow{"br", `"e-br"`, ""}))},
	{"coding twice", seal(withEncodings(encodingRow{"gzip", `"e-gzip"`, "x"}, encodingRow{"gzip", `"e-gzip"`, "y"}))},
	{"coding body one past the input", seal(uv(appendString(appendString(uv(prefix(), 0, 0, 0, 0, 0, 1, 1), "br"), `"e-br"`), 3))},
	{"body length 2^62", seal(uv(prefix(), 0, 0, 0, 0, 1<<62))},
	{"body length one past the input", seal(append(uv(prefix(), 0, 0, 0, 0, 3), 'a', 'b'))},
	{"key length max", seal(uv(prefix()[:9], math.MaxUint64))},
}

// encodingRow is one stored coding for withEncodings.
type encodingRow struct{ coding, tag, body string }

// withEncodings is the minimal forged entry (AnyEncoding set) with the given codings.
func withEncodings(cs ...encodingRow) []byte {
	b := uv(prefix(), 0, 0, 0, 0, 0, 1, uint64(len(cs)))
	for _, c := range cs {
		b = appendString(appendString(appendString(b, c.coding), c.tag), c.body)
	}
	return b
}

// withStatus is prefix with another status.
func withStatus(status uint64) []byte {
	b := uv([]byte{codecVersion, 0}, status)
	return append(b, prefix()[4:]...) // prefix writes status 200 as two bytes
}

// withDuration is prefix with duration i (0 Age, 1 Fresh, 2 stale-while-revalidate, 3 stale-if-error) set to d.
func withDuration(i int, d time.Duration) []byte {
	b := []byte{codecVersion, 0, 0xc8, 0x01, 0} // version, Gen, status 200, Stored
	for j := range 4 {
		if j == i {
			b = binary.AppendVarint(b, int64(d))
		} else {
			b = binary.AppendVarint(b, 0)
		}
	}
	return append(b, prefix()[9:]...)
}

func TestDecodeAcceptsTheForgeryBase(t *testing.T) {
	// The forged rows of decodeRejectTests change one thing of this input; it must itself be valid,
	// or they would prove nothing.
	e, err := decode(seal(uv(prefix(), 0, 0, 0, 0, 0, 0, 0)))
	if err != nil {
		t.Fatalf("decode(minimal forged entry) error: %v", err)
	}
	want := &Entry{Key: "k", Status: 200, ETag: `"e"`, Stored: time.Unix(0, 0)}
	if d := entryDiff(e, want); d != "" {
		t.Errorf("decode(minimal forged entry) differs: %s", d)
	}
	for _, b := range [][]byte{withStatus(200), withDuration(0, 0)} {
		if !bytes.Equal(b, prefix()) {
			t.Errorf("forgery helper = %x, want %x", b, prefix())
		}
	}
}

func TestDecodeRejectsWhatEncodeDidNotWrite(t *testing.T) {
	for _, tt := range decodeRejectTests {
		e, err := decode(tt.in)
		if !errors.Is(err, ErrCorrupt) || e != nil {
			t.Errorf("%s: decode(%x) = %v, %v; want nil, ErrCorrupt", tt.name, tt.in, e, err)
		}
	}
}

func TestDecodeRejectsAnyChangedByte(t *testing.T) {
	b := encode(roundTripTests[0].e)
	for i := range b {
		for mask := 1; mask < 256; mask++ {
			c := bytes.Clone(b)
			c[i] ^= byte(mask)
			if _, err := decode(c); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode with byte %d xor %#x: err = %v, want ErrCorrupt", i, mask, err)
			}
		}
	}
}

func TestDecodeRejectsEveryTruncation(t *testing.T) {
	for _, tt := range roundTripTests {
		b := encode(tt.e)
		body := b[:len(b)-4]
		for n := 0; n < len(b); n = nextCut(n, len(b)) {
			if _, err := decode(b[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: decode(first %d of %d bytes): err = %v, want ErrCorrupt", tt.name, n, len(b), err)
			}
		}
		// Cut and checksummed again: only the field parser stands between the cut and a wrong entry.
		for n := 1; n < len(body); n = nextCut(n, len(body)) {
			if _, err := decode(seal(bytes.Clone(body[:n]))); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: decode(first %d of %d body bytes, resealed): err = %v, want ErrCorrupt", tt.name, n, len(body), err)
			}
		}
	}
}

// nextCut returns the length after n at which to cut an input of size bytes: every length within
// 1 KiB of either end, where the fields are, and every 997th in a big body between, which keeps
// the test linear rather than quadratic in the body size.
func nextCut(n, size int) int {
	if n < 1024 || n >= size-1024 {
		return n + 1
	}
	return min(n+997, size-1024)
}

func TestDecodeRejectsHugeCountsQuicklyAndWithoutAllocating(t *testing.T) {
	for _, tt := range decodeRejectTests {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		_, err := decode(tt.in)
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", tt.name, err)
		}
		if took > 100*time.Millisecond {
			t.Errorf("%s: decode took %v", tt.name, took)
		}
		// Other goroutines allocate too; 1 MiB is far below what an unchecked count would ask for.
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("%s: decode of %d bytes allocated %d bytes", tt.name, len(tt.in), n)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, tt := range roundTripTests {
		if b := encode(tt.e); len(b) <= 4096 { // big inputs only slow the mutator down
			f.Add(b)
		}
	}
	for _, tt := range decodeRejectTests {
		f.Add(tt.in)
	}
	f.Add(encodeWith(roundTripTests[1].e, "Tue, 15 Nov 1994 12:45:26 GMT")) // an earlier version's stripped Last-Modified
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		if len(b) >= 5 {
			// The same bytes with a correct checksum, so the fuzzer reaches the field parser.
			checkDecode(t, reseal(b))
		}
	})
}

// checkDecode checks decode(b) does not panic, fails only with ErrCorrupt, and accepts only what
// encode writes (or an earlier version: any value in the Last-Modified slot).
func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	e, lastModified, err := decodeSlot(b)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("decode(%x) error %v does not wrap ErrCorrupt", b, err)
		}
		return
	}
	if len(e.Vary) != len(e.VaryValues) || e.Status < 100 || e.Status > 999 || e.ETag == "" {
		t.Errorf("decode(%x) = %+v, an entry that breaks its invariants", b, e)
	}
	if again := encodeWith(e, lastModified); !bytes.Equal(again, b) {
		t.Errorf("encode(decode(%x)) = %x", b, again)
	}
	// What a promotion does next (Store.objectOf): the entry's own copies say the same.
	compacted, _ := decode(b)
	compact(compacted, len(b))
	if d := entryDiff(compacted, e); d != "" {
		t.Errorf("compact(decode(%x)): %s", b, d)
	}
}

func BenchmarkEncode(b *testing.B) {
	e := roundTripTests[0].e
	b.ReportAllocs()
	for b.Loop() {
		encode(e)
	}
}

func BenchmarkDecode(b *testing.B) {
	in := encode(roundTripTests[0].e)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(in); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCorruptL2VariantIsDroppedAndDeleted(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	s := newStore(t, rdb)
	ctx := t.Context()
	good := encode(testEntry("/c", "good"))
	tests := []struct {
		name  string
		value []byte
	}{
		{"garbage", []byte("not an entry")},
		{"empty", nil},
		{"another key's entry", encode(testEntry("/other", "swapped"))},
		{"another codec version", withByte(good, 0, codecVersion+1)},
		{"a flipped byte", func() []byte { b := bytes.Clone(good); b[len(b)/2] ^= 0x20; return b }()},
		{"truncated", good[:len(good)-1]},
	}
	for _, tt := range tests {
		key := "/c" // "another key's entry" names /other: a swapped or colliding hash
		rk := redisKey(key)
		rdb.Del(ctx, rk)
		s.Forget(key)
		if err := rdb.HSet(ctx, rk, "v:", tt.value).Err(); err != nil {
			t.Fatalf("%s: HSET: %v", tt.name, err)
		}
		o, _, err := s.Get(ctx, key)
		if err != nil || !isMiss(o) {
			t.Errorf("%s: Get = %+v, %v; want nothing to serve and no error", tt.name, o, err)
		}
		if n, err := rdb.HExists(ctx, rk, "v:").Result(); n || err != nil {
			t.Errorf("%s: HEXISTS v: = %v, %v; want the corrupt field deleted", tt.name, n, err)
		}
	}

	// A corrupt variant next to a good one: the good one is served.
	rk := redisKey("/c")
	rdb.Del(ctx, rk)
	s.Forget("/c")
	en := testEntry("/c", "hello")
	en.Vary, en.VaryValues = []string{"Accept-Language"}, []string{"en"}
	if err := s.Set(ctx, en); err != nil {
		t.Fatalf("Set: %v", err)
	}
	de := testEntry("/c", "hallo")
	de.Vary, de.VaryValues = []string{"Accept-Language"}, []string{"de"}
	rdb.HSet(ctx, rk, variantField(de), "garbage")
	s.Forget("/c")
	o, tier, err := s.Get(ctx, "/c")
	if tier != L2 || err != nil || entryDiff(only(o), en) != "" {
		t.Errorf("Get with one corrupt variant = %+v, %v, %v; want the good variant alone", o, tier, err)
	}
	fields := rdb.HKeys(ctx, rk).Val()
	slices.Sort(fields)
	if want := []string{"o", variantField(en)}; !slices.Equal(fields, want) {
		t.Errorf("hash fields after Get = %q, want only %q", fields, want)
	}
}

// TestAPromotedEntryHoldsTheKeyItWasAskedBy: the key a decoded entry read views the Redis
// value; the Store gives it the caller's key instead, the string L1 and the indexes keep, so
// that nothing but the entry itself holds the value's bytes.
func TestAPromotedEntryHoldsTheKeyItWasAskedBy(t *testing.T) {
	ctx := t.Context()
	rdb := redistest.Start(t).Client()
	s := newStore(t, rdb)
	if err := s.Set(ctx, testEntry("/promoted", "hello")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	s.Forget("/promoted")
	key := strings.Clone("/promoted")
	o, tier, err := s.Get(ctx, key)
	if tier != L2 || err != nil || len(o.Variants) != 1 {
		t.Fatalf("Get = %+v, %v, %v; want the entry from L2", o, tier, err)
	}
	if e := o.Variants[0]; e.Key != key || unsafe.StringData(e.Key) != unsafe.StringData(key) {
		t.Errorf("the promoted entry's key %q is not the caller's string", e.Key)
	}
}

// TestAnHGETALLReplyIsAFreshStringOfItsOwn guards an assumption of Store.objectOf, which
// decodes a variant over the string go-redis returned (its bytes viewed, not copied): each bulk
// string of a reply is an allocation of its own, never a view of the connection's read buffer
// that a later reply overwrites. Were a go-redis upgrade to change that, an entry would change
// under its readers (and one response's bytes show in another's): this test fails first.
func TestAnHGETALLReplyIsAFreshStringOfItsOwn(t *testing.T) {
	ctx := t.Context()
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), PoolSize: 1}) // one connection, one read buffer
	t.Cleanup(func() { rdb.Close() })
	a, b := strings.Repeat("a", 3000), strings.Repeat("b", 3000)
	rdb.HSet(ctx, "{t}a", "v", a)
	rdb.HSet(ctx, "{t}b", "v", b)
	first := rdb.HGetAll(ctx, "{t}a").Val()["v"]
	second := rdb.HGetAll(ctx, "{t}b").Val()["v"]
	if first != a || second != b || unsafe.StringData(first) == unsafe.StringData(second) {
		t.Errorf("the first reply now reads %.20q…, the second %.20q…: a reply's string is not its own", first, second)
	}
}

// TestAStoredValueThatWouldInjectALineIsCorrupt: a field, replayed field or entity-tag that
// could not be sent as it is (a CR or LF would start a field line of its own in a reply or a
// refresh; a NUL no parser agrees on; a name that is not a token) is only in a value something
// other than swrproxy wrote to Redis: decode refuses it as corrupt, so it is dropped, never
// served nor replayed.
func TestAStoredValueThatWouldInjectALineIsCorrupt(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(e *Entry)
	}{
		{"a field value with CR LF", func(e *Entry) { e.Header = []Field{{"Link", "</a>\r\nSet-Cookie: s=1"}} }},
		{"a field name with a space", func(e *Entry) { e.Header = []Field{{"Set Cookie", "s=1"}} }},
		{"a replayed value with a NUL", func(e *Entry) { e.ReqHeader = &[]Field{{"Accept", "*/*\x00User-Agent\x00x"}} }},
		{"an entity-tag with LF", func(e *Entry) { e.ETag = "\"a\"\nSet-Cookie: s=1" }},
		{"a coding's entity-tag with CR", func(e *Entry) {
			e.Encodings = []Encoding{{Coding: "gzip", ETag: "\"a:swr-gzip\"\r", Body: []byte{0x1f, 0x8b}}}
		}},
	} {
		e := testEntry("/inject", "body")
		tt.edit(e)
		if _, err := decode(encode(e)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: decode error %v, want ErrCorrupt", tt.name, err)
		}
	}
}
