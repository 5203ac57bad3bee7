package tiers

import (
	"testing"
	"unsafe"
)

// TestAnEntryFitsThe288ByteSizeClass: every stored object pays for its Entry struct rounded up
// to the allocator's size class; one field more (or Status as an int) would cost the 320-byte
// class, 32 bytes per object.
func TestAnEntryFitsThe288ByteSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Entry{}); n > 288 {
		t.Errorf("Entry is %d bytes, want at most 288", n)
	}
}
