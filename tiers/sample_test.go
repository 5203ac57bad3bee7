package tiers

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSampledReadsKeepL1sHitRatio: Peek records one hit in defaultReadSample for L1's eviction
// policy. On a skewed workload (Zipf, s = 1.1, over 10 000 keys, an L1 that holds about a tenth
// of them, every miss stored as a fill would) L1's hit ratio stays within a point and a half of
// the one it has when every hit is recorded (0.79 both), while recording none loses three (0.76:
// the fills alone still teach the policy the keys' frequencies). All three runs see the same
// requests.
func TestSampledReadsKeepL1sHitRatio(t *testing.T) {
	const keys, requests = 10_000, 120_000
	body := strings.Repeat("x", 1<<10)
	zipf := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, keys-1)
	stream := make([]string, requests)
	for i := range stream {
		stream[i] = "/k/" + strconv.FormatUint(zipf.Uint64(), 10)
	}
	ratio := func(sample uint32) float64 {
		s := newStoreWith(t, Options{L1MaxBytes: 1_000 * (1<<10 + 600), L1MaxTTL: time.Hour})
		s.readSample = sample
		hits := 0
		for i, key := range stream {
			if i%64 == 0 {
				s.l1.CleanUp() // the policy's maintenance, otherwise run when its goroutine gets a CPU
			}
			if s.Peek(key) != nil {
				if i >= requests/3 { // after the warm-up
					hits++
				}
				continue
			}
			if err := s.Set(t.Context(), testEntry(key, body)); err != nil {
				t.Fatal(err)
			}
		}
		return float64(hits) / float64(requests-requests/3)
	}
	all, sampled, none := ratio(1), ratio(defaultReadSample), ratio(1<<31)
	t.Logf("L1 hit ratio: every hit recorded %.3f, one in %d %.3f, one in 2^31 %.3f", all, defaultReadSample, sampled, none)
	if sampled < all-0.015 {
		t.Errorf("hit ratio with one hit in %d recorded = %.3f, want within 0.015 of %.3f (all recorded)", defaultReadSample, sampled, all)
	}
	if none > all-0.02 {
		t.Errorf("recording (almost) no hit gives %.3f, all %.3f: the workload does not tell the policy's reads apart", none, all)
	}
}
