package tiers

import (
	"testing"
	"time"
	"unsafe"
)

// TestAnObjectFitsThe64ByteSizeClass: one Object per stored key; with a time.Time and an int it
// cost the 96-byte class.
func TestAnObjectFitsThe64ByteSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Object{}); n > 64 {
		t.Errorf("Object is %d bytes, want at most 64", n)
	}
}

// TestAnEntryFitsThe256ByteSizeClass: every stored object pays for its Entry struct rounded up
// to the allocator's size class; one field more (Last-Modified beside the stored fields, the
// replay list as a slice rather than a pointer, or Status as an int) costs the 288-byte class,
// 32 bytes per object. Exactly 256: NewEntry's blocks (256 + 32 per field) are size classes.
func TestAnEntryFitsThe256ByteSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Entry{}); n != 256 {
		t.Errorf("Entry is %d bytes, want 256 (NewEntry's block sizes follow from it)", n)
	}
}

// TestAnEntryAndItsFieldsAreOneAllocation: NewEntry(n) gives room for exactly n fields, in the
// Entry's own block up to 16 (one allocation, whose size is the Entry and the fields: each a
// size class), beyond in a slice of its own; filling it never reallocates.
func TestAnEntryAndItsFieldsAreOneAllocation(t *testing.T) {
	for n := range 20 {
		var e *Entry
		allocs := testing.AllocsPerRun(10, func() {
			e = NewEntry(n)
			for range n {
				e.Header = append(e.Header, Field{Name: "X-Field", Value: "v"})
			}
		})
		want := 1.0
		if n > 16 {
			want = 2
		}
		if allocs != want {
			t.Errorf("NewEntry(%d) and %d fields: %v allocations, want %v", n, n, allocs, want)
		}
		if e == nil || len(e.Header) != n || cap(e.Header) != n {
			t.Errorf("NewEntry(%d): %d fields in a capacity of %d", n, len(e.Header), cap(e.Header))
		}
		if n > 0 && n <= 16 {
			block := uintptr(unsafe.Pointer(e))
			first := uintptr(unsafe.Pointer(&e.Header[0]))
			if first != block+unsafe.Sizeof(Entry{}) {
				t.Errorf("NewEntry(%d): the fields are not in the Entry's block", n)
			}
		}
	}
}

// TestAnObjectOfOneVariantIsOneAllocation: the object Set stores for a new key holds its
// variant list in its own block.
func TestAnObjectOfOneVariantIsOneAllocation(t *testing.T) {
	e := &Entry{Key: "/k", Gen: 3, Stored: time.Now(), Fresh: time.Minute}
	var o *Object
	if n := testing.AllocsPerRun(10, func() { o = oneVariant(e.Key, e.Gen, e) }); n != 1 {
		t.Errorf("oneVariant: %v allocations, want 1", n)
	}
	if o.Key != "/k" || o.Gen != 3 || len(o.Variants) != 1 || o.Variants[0] != e || o.Size() != newObject("/k", 3, []*Entry{e}).Size() {
		t.Errorf("oneVariant = %+v", o)
	}
}

// TestOnlyAnObjectOfOneVariantHasAMemoSlot: the tracker's slot is in oneVariant's block only;
// an object of several variants, one made by hand, or a copy of the struct has none (a copy's
// slot would be memory past it).
func TestOnlyAnObjectOfOneVariantHasAMemoSlot(t *testing.T) {
	e := &Entry{Key: "/k", Stored: time.Now(), Fresh: time.Minute}
	o := oneVariant(e.Key, 1, e)
	slot := o.Memo()
	if slot == nil || uintptr(unsafe.Pointer(slot)) != uintptr(unsafe.Pointer(o))+72 {
		t.Fatalf("oneVariant's object: Memo = %p, want the 8 bytes after its list (object at %p)", slot, o)
	}
	if got := unsafe.Sizeof(oneBlock{}); got != 80 {
		t.Errorf("oneVariant's block is %d bytes, want 80 (a size class)", got)
	}
	copied := *o
	two := newObject("/k", 1, []*Entry{e, {Key: "/k", Vary: []string{"Accept"}, VaryValues: []string{"a"}}})
	for name, x := range map[string]*Object{"a copy": &copied, "two variants": two, "by hand": {Key: "/k", Variants: []*Entry{e}}} {
		if x.Memo() != nil {
			t.Errorf("%s: Memo != nil", name)
		}
	}
	// An object and a list made apart, of one size class (64 bytes: a list with room for 8), lie
	// side by side in most cases, as oneVariant's do (security review: without the flag Memo
	// took the list's second element for the slot).
	adjacent := 0
	made := make([]*Object, 0, 1000) // on the heap, as stored objects are
	for range 1000 {
		x := new(Object)
		x.Key, x.Variants = "/k", make([]*Entry, 1, 8)
		x.Variants[0] = e
		made = append(made, x)
		if uintptr(unsafe.Pointer(unsafe.SliceData(x.Variants))) == uintptr(unsafe.Pointer(x))+unsafe.Offsetof(oneBlock{}.one) {
			adjacent++
		}
		if x.Memo() != nil {
			t.Fatal("an object made apart from its list has a memo slot")
		}
	}
	t.Logf("%d of 1000 objects made apart lay right before their list", adjacent)
	sink = made
}

var sink []*Object

// TestTheObjectsSetStoresHoldTheirOneVariantInTheirBlock: a new key's object, and the object
// that replaces it when the key is stored again (a refresh, a renewal) with one variant left,
// both keep their variant list in their own block.
func TestTheObjectsSetStoresHoldTheirOneVariantInTheirBlock(t *testing.T) {
	s := newStore(t, nil)
	for i := range 3 {
		e := &Entry{Key: "/k", Status: 200, ETag: `"x"`, Stored: time.Now(), Fresh: time.Minute}
		if err := s.Set(t.Context(), e); err != nil {
			t.Fatal(err)
		}
		o := s.Peek("/k")
		if o == nil || len(o.Variants) != 1 || o.Variants[0] != e {
			t.Fatalf("Set #%d: object %+v, want e alone", i+1, o)
		}
		if uintptr(unsafe.Pointer(&o.Variants[0])) != uintptr(unsafe.Pointer(o))+unsafe.Sizeof(Object{}) {
			t.Errorf("Set #%d: the variant list is not in the object's block", i+1)
		}
	}
}

// TestTheFieldsAHitReadsEndWithinThreeLines: the fields a cache hit reads (proxy.Handler.Serve
// and write, the tracker's TouchAt) end by byte 192 of the Entry, the others come after: with
// many keys a hit finds its entry in memory, not in the CPU's caches, and each 64-byte line it
// touches is a load of its own (three for an Entry on a line boundary; see Entry).
func TestTheFieldsAHitReadsEndWithinThreeLines(t *testing.T) {
	var e Entry
	tests := []struct {
		name      string
		off, size uintptr
	}{
		{"Key", unsafe.Offsetof(e.Key), unsafe.Sizeof(e.Key)},
		{"Header", unsafe.Offsetof(e.Header), unsafe.Sizeof(e.Header)},
		{"Body", unsafe.Offsetof(e.Body), unsafe.Sizeof(e.Body)},
		{"ETag", unsafe.Offsetof(e.ETag), unsafe.Sizeof(e.ETag)},
		{"Vary", unsafe.Offsetof(e.Vary), unsafe.Sizeof(e.Vary)},
		{"Stored", unsafe.Offsetof(e.Stored), unsafe.Sizeof(e.Stored)},
		{"Age", unsafe.Offsetof(e.Age), unsafe.Sizeof(e.Age)},
		{"Fresh", unsafe.Offsetof(e.Fresh), unsafe.Sizeof(e.Fresh)},
		{"StaleWhileRevalidate", unsafe.Offsetof(e.StaleWhileRevalidate), unsafe.Sizeof(e.StaleWhileRevalidate)},
		{"Gen", unsafe.Offsetof(e.Gen), unsafe.Sizeof(e.Gen)},
		{"Encodings", unsafe.Offsetof(e.Encodings), unsafe.Sizeof(e.Encodings)},
		{"Status", unsafe.Offsetof(e.Status), unsafe.Sizeof(e.Status)},
		{"Guessed", unsafe.Offsetof(e.Guessed), unsafe.Sizeof(e.Guessed)},
		{"AnyEncoding", unsafe.Offsetof(e.AnyEncoding), unsafe.Sizeof(e.AnyEncoding)},
	}
	for _, tt := range tests {
		if end := tt.off + tt.size; end > 3*64 {
			t.Errorf("Entry.%s ends at byte %d, past the first three cache lines (192)", tt.name, end)
		}
	}
	if off := unsafe.Offsetof(e.VaryValues); off < 3*64 {
		t.Errorf("Entry.VaryValues (read only for a response with Vary) at byte %d, want the fourth line", off)
	}
}
