package tiers

import "unsafe"

// NewEntry returns an empty Entry whose Header has room for n fields (len 0, cap n), allocated
// with the Entry in one block when n is at most 16. An entry and its fields live and die
// together; apart, the fields shared their size class with the many short-lived objects of the
// same size a fill allocates, and once the fills were over the spans those had used stayed in
// use for the fields scattered among them (with oneVariant, about 70 bytes per stored object of
// 1 KiB). Each block size below is a size class of the allocator (the Entry is 256 bytes, a
// Field 32).
func NewEntry(n int) *Entry {
	switch {
	case n <= 0:
		return &Entry{}
	case n == 1:
		return withFields[[1]Field](n)
	case n == 2:
		return withFields[[2]Field](n)
	case n == 3:
		return withFields[[3]Field](n)
	case n == 4:
		return withFields[[4]Field](n)
	case n == 5:
		return withFields[[5]Field](n)
	case n == 6:
		return withFields[[6]Field](n)
	case n == 7:
		return withFields[[7]Field](n)
	case n == 8:
		return withFields[[8]Field](n)
	case n <= 10:
		return withFields[[10]Field](n)
	case n <= 12:
		return withFields[[12]Field](n)
	case n <= 14:
		return withFields[[14]Field](n)
	case n <= 16:
		return withFields[[16]Field](n)
	}
	return &Entry{Header: make([]Field, 0, n)}
}

// withFields allocates an Entry and an array of fields, A, in one block; the Entry's Header
// views the first n of them (A holds at least n).
func withFields[A any](n int) *Entry {
	b := new(struct {
		e Entry
		f A
	})
	b.e.Header = unsafe.Slice((*Field)(unsafe.Pointer(&b.f)), n)[:0]
	return &b.e
}

// oneVariant returns the object of key at generation gen whose one variant is e, allocated with
// its variant list and its memo slot in one block (80 bytes, a size class of the allocator,
// otter's nodes'): as separate objects, the Object (64 bytes) and the list (8) would share their
// size classes with the many short-lived objects of those sizes a fill allocates, and keep the
// spans of those in use once the fills are over (as NewEntry's fields would).
func oneVariant(key string, gen uint64, e *Entry) *Object {
	b := new(oneBlock)
	b.one[0] = e
	b.o.init(key, gen, b.one[:])
	b.o.block = true
	return &b.o
}

// oneBlock is what oneVariant allocates.
type oneBlock struct {
	o    Object
	one  [1]*Entry
	memo unsafe.Pointer
}

// Memo returns o's memo slot, or nil if it has none: only an object oneVariant made has one, in
// its block, and a copy of the struct has none. The slot belongs to the refresh tracker (one per
// Store), which keeps its record of o's key there, read and written only with sync/atomic, so
// that a hit finds the record without the tracker's map; nothing else may use it. It is an
// Object's one mutable part.
func (o *Object) Memo() *unsafe.Pointer {
	// Both checks are needed: the flag rules out an object made otherwise, whose list may lie
	// right after it in memory all the same (the allocator puts objects of one size class side
	// by side); the addresses, compared as integers (converting o to a *oneBlock first would make
	// a pointer past o's allocation), rule out a copy of the struct, which has the flag.
	if !o.block || len(o.Variants) != 1 || uintptr(unsafe.Pointer(unsafe.SliceData(o.Variants))) != uintptr(unsafe.Pointer(o))+unsafe.Offsetof(oneBlock{}.one) {
		return nil
	}
	return &(*oneBlock)(unsafe.Pointer(o)).memo
}
