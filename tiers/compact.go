package tiers

import (
	"slices"
	"strings"
	"sync"
)

// A promoted entry is decoded as views of the Redis value it came in (decode): one allocation
// kept whole, the body and a few hundred bytes of fields, tags and lengths beside it. Where the
// body and its codings alone fit a smaller allocation than the value, compact gives the entry
// copies of its own instead and the value is garbage: a 1 KiB JSON body comes in a value of
// about 1 230 bytes, in the allocator's 1 280-byte size class, and is kept in 1 024 (with its
// field values interned, as a fill keeps them, and its replayed fields one shared list).
//
// The copies must land in smaller size classes than the value, or the values left as garbage
// would sit in the same spans as the copies kept, and those spans would stay in use half empty
// once the promotions were over: compact copies only when the size classes of what each entry
// keeps alone (the body, its codings, their tags, and any field value too long to intern) add up
// to less than the value's. A value past the small size classes (compactMax) is kept as it is:
// a large allocation has a span of its own, freed whole, and copying would save at most part of
// an 8 KiB page for a copy of the whole body. So is an entry whose replayed fields are longer
// than refresh keeps (MaxReplayBytes: a value written by something else), which the interner
// does not keep.
const compactMax = 32 << 10

// compact makes e, decoded from a value of blob bytes, hold copies of its own rather than views
// of the value, when that costs less (above). Its tags, Vary names and values are copies
// already (decode), its Key the caller's (Store.objectOf).
func compact(e *Entry, blob int) {
	if blob > compactMax {
		return
	}
	cost := sizeClass(len(e.Body)) + sizeClass(len(e.ETag))
	for _, c := range e.Encodings {
		cost += sizeClass(len(c.Body)) + sizeClass(len(c.ETag))
	}
	replayed := e.Replayed()
	size := 0
	for _, f := range replayed {
		size += len(f.Name) + len(f.Value)
		cost += alone(f.Name) + alone(f.Value)
	}
	for _, f := range e.Header {
		cost += alone(f.Name) + alone(f.Value)
	}
	if size > MaxReplayBytes || cost >= sizeClass(blob) {
		return
	}
	e.Body = clone(e.Body)
	e.ETag = strings.Clone(e.ETag)
	for i := range e.Encodings {
		c := &e.Encodings[i] // the codings' list is the entry's own (decode allocates it)
		c.Body, c.ETag = clone(c.Body), strings.Clone(c.ETag)
	}
	for i, f := range e.Header { // the fields are in the entry's block (NewEntry)
		e.Header[i] = Field{Name: StoredValues.Of(f.Name), Value: StoredValues.Of(f.Value)}
	}
	if len(replayed) > 0 {
		var buf [8]Field // List copies a list it keeps: this one stays on the stack
		fs := buf[:0]
		for _, f := range replayed {
			fs = append(fs, Field{Name: ReplayValues.Of(f.Name), Value: ReplayValues.Of(f.Value)})
		}
		e.ReqHeader = ReplayValues.List(fs)
	}
}

// clone returns a copy of b at its length (nil for none): a stored body is read only.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

// sizeClasses are the sizes the allocator rounds a small object up to, up to compactMax, learnt
// from the runtime on first use: slices.Grow allocates a size class and says which in its
// capacity.
var sizeClasses = sync.OnceValue(func() []int {
	var sizes []int
	for n := 1; n <= compactMax; {
		c := cap(slices.Grow([]byte(nil), n))
		sizes = append(sizes, c)
		n = c + 1
	}
	return sizes
})

// sizeClass returns what an allocation of n bytes takes: 0 for none, its size class up to
// compactMax, n itself beyond (compact never asks: each part of a value is at most its length).
func sizeClass(n int) int {
	if n == 0 {
		return 0
	}
	sizes := sizeClasses()
	i, _ := slices.BinarySearch(sizes, n)
	if i == len(sizes) {
		return n
	}
	return sizes[i]
}

// alone is what an interned string of s costs each entry that holds it: nothing for one the
// interner keeps (shared), a copy's size class for one too long to keep.
func alone(s string) int {
	if len(s) > internValueMax {
		return sizeClass(len(s))
	}
	return 0
}
