package tiers

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/testenv"
)

// longKey is a distinct cache key of about n bytes, like a request target near fasthttp's header limit.
func longKey(i, n int) string {
	p := "/search?q=" + strconv.Itoa(i) + "&pad="
	return p + strings.Repeat("x", n-len(p))
}

// Invalidations remember each key they dropped for a few seconds (fences). Distinct long keys
// must not grow that memory past its byte budget, and a fence forgotten to stay within it must
// not let a read that began before it into L1.
func TestFencesAreBoundedByBytes(t *testing.T) {
	s := newStore(t, nil)
	const keyBytes = 4 << 10
	n := 3 * fenceMaxBytes / keyBytes // three budgets' worth
	start := time.Now()
	for i := range n {
		s.Forget(longKey(i, keyBytes))
	}
	s.fences.CleanUp()
	var held, bytes int
	for k := range s.fences.All() {
		held++
		bytes += len(k) + fenceOverhead
	}
	t.Logf("%d fences of %d-byte keys: %d held, %d KiB", n, keyBytes, held, bytes>>10)
	if bytes > fenceMaxBytes || held == 0 {
		t.Errorf("fences hold %d bytes in %d keys after %d invalidations, want at most %d bytes", bytes, held, n, fenceMaxBytes)
	}
	if w := s.fences.WeightedSize(); w > fenceMaxBytes {
		t.Errorf("fences weigh %d bytes, want at most %d", w, fenceMaxBytes)
	}

	// Whichever fences were forgotten, an L2 read that began before the invalidations is not promoted.
	for i := range n {
		k := longKey(i, keyBytes)
		s.promote(k, newObject(k, 0, []*Entry{testEntry(k, "old")}), start)
		if s.Peek(k) != nil {
			t.Fatalf("a read that began before key %d was dropped was promoted into L1", i)
		}
	}
	// A read that began after them is.
	k := longKey(0, keyBytes)
	s.promote(k, newObject(k, 0, []*Entry{testEntry(k, "new")}), time.Now())
	if s.Peek(k) == nil {
		t.Errorf("a read that began after the invalidations was not promoted")
	}
}

// Hit-for-pass marks and tombstones live in L1, weighed like entries: distinct long keys cannot
// hold more than L1MaxBytes with them.
func TestPassMarksAndTombstonesAreWeighedIntoL1(t *testing.T) {
	const max = 1 << 20
	s := newStoreWith(t, Options{L1MaxBytes: max, L1MaxTTL: time.Hour})
	const keyBytes = 2 << 10
	for i := range 2 * max / keyBytes {
		s.MarkPass(longKey(i, keyBytes), time.Hour)
		if err := s.Delete(t.Context(), longKey(-i-1, keyBytes)); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	var objects int
	var weight uint64
	testenv.WaitFor(t, 3*time.Second, "L1 to evict down to its byte bound", func() bool { // otter evicts asynchronously
		s.l1.CleanUp()
		objects, weight = s.L1Stats()
		return weight <= max
	})
	var bytes int
	for k, o := range s.l1.All() {
		if len(o.Variants) > 0 {
			t.Fatalf("L1 holds an entry for %q, want only marks and tombstones", k[:20])
		}
		bytes += len(k) + objectOverhead
	}
	t.Logf("L1: %d marks and tombstones of %d-byte keys, weighing %d KiB", objects, keyBytes, weight>>10)
	if objects == 0 || objects > max/keyBytes || bytes > max {
		t.Errorf("L1 holds %d marks and tombstones (%d bytes with their keys), want 1 to %d within %d bytes", objects, bytes, max/keyBytes, max)
	}
}
