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

// TestAnEntryFitsThe288ByteSizeClass: every stored object pays for its Entry struct rounded up
// to the allocator's size class; one field more (or Status as an int) would cost the 320-byte
// class, 32 bytes per object.
func TestAnEntryFitsThe288ByteSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Entry{}); n > 288 {
		t.Errorf("Entry is %d bytes, want at most 288", n)
	}
}
