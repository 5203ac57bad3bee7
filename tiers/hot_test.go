package tiers

import (
	"fmt"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

// Hotness is the fleet's: keys one instance marks hot (in one pipeline, whose keys a cluster
// spreads over its masters) are hot to another, for their window only; others are cold.
func testHotnessIsSharedAcrossInstances(t *testing.T, srv redistest.Topology) {
	a, b := newStore(t, srv.Connect(t)), newStore(t, srv.Connect(t))
	ctx := t.Context()
	var keys []string
	for i := range 50 {
		keys = append(keys, fmt.Sprintf("/h/%d", i))
	}
	if err := a.MarkHot(ctx, keys, time.Minute); err != nil {
		t.Fatalf("MarkHot: %v", err)
	}
	if err := a.MarkHot(ctx, []string{"/brief"}, 50*time.Millisecond); err != nil {
		t.Fatalf("MarkHot: %v", err)
	}
	for _, k := range keys {
		if !b.IsHot(ctx, k) {
			t.Errorf("%s marked hot on one instance is not hot on the other", k)
		}
	}
	if b.IsHot(ctx, "/cold") {
		t.Error("/cold is hot, though nobody asked for it")
	}
	time.Sleep(100 * time.Millisecond) // the brief key's window runs out: the time itself is under test
	if b.IsHot(ctx, "/brief") {
		t.Error("/brief is still hot after its window")
	}
}
