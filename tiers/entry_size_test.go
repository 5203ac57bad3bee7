package tiers

import (
	"testing"
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
// 32 bytes per object.
func TestAnEntryFitsThe256ByteSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Entry{}); n > 256 {
		t.Errorf("Entry is %d bytes, want at most 256", n)
	}
}
