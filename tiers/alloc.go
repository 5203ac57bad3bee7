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
// otter's nodes'): as two objects, the Object (64 bytes) and the list (8) shared their size
// classes with the many short-lived objects of those sizes a fill allocates, as the fields did.
func oneVariant(key string, gen uint64, e *Entry) *Object {
	b := new(oneBlock)
	b.one[0] = e
	b.o.init(key, gen, b.one[:])
	return &b.o
}

// oneBlock is what oneVariant allocates.
type oneBlock struct {
	o    Object
	one  [1]*Entry
	memo unsafe.Pointer
}

// Memo returns o's memo slot, or nil if it has none: only an object oneVariant made has one (the
// 8 bytes left in its block), and only while it is that object (a copy of the struct has none).
// The slot belongs to the refresh tracker, which keeps in it its record of o's key, read and
// written atomically, so that a hit finds the record without a map lookup (with many keys, two
// loads from memory); nothing else may use it. Objects are immutable but for this slot.
func (o *Object) Memo() *unsafe.Pointer {
	// Addresses compared as integers: converting o to a *oneBlock before knowing it is one
	// would make a pointer past o's allocation.
	if len(o.Variants) != 1 || uintptr(unsafe.Pointer(unsafe.SliceData(o.Variants))) != uintptr(unsafe.Pointer(o))+unsafe.Offsetof(oneBlock{}.one) {
		return nil
	}
	return &(*oneBlock)(unsafe.Pointer(o)).memo
}
