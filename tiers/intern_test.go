package tiers

import (
	"strconv"
	"strings"
	"testing"
)

// TestInternedValuesAreBounded: an Interned table keeps at most internMax values of at most
// internValueMax bytes; full, it starts over, so values a client floods it with do not stay.
func TestInternedValuesAreBounded(t *testing.T) {
	var in Interned
	long := strings.Repeat("x", internValueMax+1)
	if s := in.Of(long); s != long || len(in.values) != 0 {
		t.Errorf("a value over %d bytes was kept (%d values)", internValueMax, len(in.values))
	}
	for i := range internMax + 10 {
		in.Of("agent/" + strconv.Itoa(i))
	}
	if len(in.values) != 10 {
		t.Errorf("%d values kept after %d, want 10: full at %d, it starts over", len(in.values), internMax+10, internMax)
	}
}

// TestTwoReplayListsNeverReadAlike: the interner's key of a list spells each name and value
// after its length, so a list whose one value holds what a second field would look like is not
// the two-field list (it was, with the parts joined by NULs: a list forged in L2 could stand in
// for every entry a kind of client filled); a list past MaxReplayBytes is copied, not kept.
func TestTwoReplayListsNeverReadAlike(t *testing.T) {
	var in Interned
	forged := in.List([]Field{{"Accept", "*/*\x00User-Agent\x00poller/1.0"}})
	real := in.List([]Field{{"Accept", "*/*"}, {"User-Agent", "poller/1.0"}})
	if real == forged || len(*real) != 2 {
		t.Errorf("the two-field list came back as %q", *real)
	}
	long := []Field{{"User-Agent", strings.Repeat("a", MaxReplayBytes)}}
	if a, b := in.List(long), in.List(long); a == b || len(in.fields) != 2 {
		t.Errorf("a list of %d bytes was kept (%d lists kept)", MaxReplayBytes+10, len(in.fields))
	}
}
