package tiers

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

func TestKeyedVariantsAreListedByTheirKeyAndFollowL1(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	for _, k := range []string{"/a", "/a\nX-Region: eu", "/a\nX-Region: us", "/ab\nX-Region: eu", "/a?x=1\nX-Region: eu"} {
		if err := s.Set(ctx, testEntry(k, "v")); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"/a\nX-Region: eu", "/a\nX-Region: us"}
	if got := s.L1Variants("/a"); !slices.Equal(got, want) {
		t.Errorf("L1Variants(/a) = %q, want %q", got, want)
	}
	if got, err := s.Variants(ctx, "/a"); err != nil || !slices.Equal(got, want) {
		t.Errorf("Variants(/a) without Redis = %q, %v; want %q", got, err, want)
	}
	if got := s.L1Variants("/a\nX-Region: eu"); got != nil {
		t.Errorf("a keyed key has no variants of its own, got %q", got)
	}
	s.Forget("/a\nX-Region: us")
	if got := s.L1Variants("/a"); !slices.Equal(got, want[:1]) {
		t.Errorf("after Forget: %q, want %q", got, want[:1])
	}
	s.ForgetAll()
	if got := s.L1Variants("/a"); got != nil || s.variants.size() != 0 {
		t.Errorf("after ForgetAll: %q and %d indexed, want none", got, s.variants.size())
	}
}

func testVariantsIncludeThoseAnotherInstanceStoredInRedis(t *testing.T, srv redistest.Topology) {
	ctx := context.Background()
	a, b := newStore(t, srv.Connect(t)), newStore(t, srv.Connect(t))
	a.Set(ctx, testEntry("/p\nX-Region: eu", "eu"))
	b.Set(ctx, testEntry("/p\nX-Region: us", "us"))
	got, err := b.Variants(ctx, "/p")
	if want := []string{"/p\nX-Region: eu", "/p\nX-Region: us"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Variants(/p) = %q, %v; want both instances' %q", got, err, want)
	}
}

// The index holds one entry per keyed L1 object: distinct keyed keys far beyond L1's bound leave
// no more indexed keys than L1 holds.
func TestTheVariantIndexIsBoundedByL1(t *testing.T) {
	ctx := context.Background()
	s := newStoreWith(t, Options{L1MaxBytes: 1 << 20, L1MaxTTL: time.Minute})
	const n = 20000
	for i := range n {
		s.Set(ctx, testEntry(fmt.Sprintf("/k%d\nX-Region: %d", i%100, i), "body of about a hundred bytes, so that a megabyte holds a few thousand of them ......."))
	}
	s.l1.CleanUp()
	objects, _ := s.L1Stats()
	if held := s.variants.size(); held > objects || held == 0 || objects >= n {
		t.Errorf("%d keyed keys written, L1 holds %d objects, the index %d keys: want at most L1's", n, objects, held)
	}
	t.Logf("%d keyed keys written: L1 %d objects, index %d", n, objects, s.variants.size())
}

// BenchmarkVariantsAmongManyKeys compares listing one key's keyed variants through the index
// with the prefix scan of L1 it replaces, among 200 000 L1 keys (what every write invalidation
// paid per key).
func BenchmarkVariantsAmongManyKeys(b *testing.B) {
	ctx := context.Background()
	s := newStoreWith(b, Options{L1MaxBytes: 1 << 30, L1MaxTTL: time.Hour})
	for i := range 200000 {
		k := fmt.Sprintf("/api/item/%d", i)
		if i%10 == 0 {
			k += "\nX-Region: eu"
		}
		s.Set(ctx, testEntry(k, "v"))
	}
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			s.L1Variants("/api/item/10")
		}
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			s.L1KeysWithPrefix("/api/item/10\n")
		}
	})
}
