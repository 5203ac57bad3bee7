package memtidy

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/testenv"
)

func TestACollectionIsDueOnlyWhenTheProcessWentQuietWithMemoryToReturn(t *testing.T) {
	const mib = 1 << 20
	prev := sample{cycles: 7, allocated: 1000 * mib, objects: 300 * mib, live: 150 * mib}
	for _, c := range []struct {
		name string
		cur  sample
		want bool
	}{
		{"quiet, half the heap garbage", sample{cycles: 7, allocated: 1000 * mib, objects: 300 * mib, live: 150 * mib}, true},
		{"quiet, a little allocation", sample{cycles: 7, allocated: 1000*mib + mib/2, objects: 300 * mib, live: 150 * mib}, true},
		{"still allocating", sample{cycles: 7, allocated: 1005 * mib, objects: 305 * mib, live: 150 * mib}, false},
		{"allocating a little for a large heap", sample{cycles: 7, allocated: 1002 * mib, objects: 302 * mib, live: 150 * mib}, true},
		{"the GC ran meanwhile", sample{cycles: 8, allocated: 1000 * mib, objects: 300 * mib, live: 150 * mib}, false},
		{"garbage under a quarter of the live heap", sample{cycles: 7, allocated: 1000 * mib, objects: 180 * mib, live: 150 * mib}, false},
		{"garbage under 16 MiB", sample{cycles: 7, allocated: 1000 * mib, objects: 30 * mib, live: 20 * mib}, false},
		{"nothing beyond the live heap", sample{cycles: 7, allocated: 1000 * mib, objects: 100 * mib, live: 150 * mib}, false},
		{"quiet, the garbage collected, its pages kept", sample{cycles: 7, allocated: 1000 * mib, objects: 150 * mib, live: 150 * mib, free: 120 * mib}, true},
		{"quiet, some garbage and some free pages", sample{cycles: 7, allocated: 1000 * mib, objects: 170 * mib, live: 150 * mib, free: 20 * mib}, true},
		{"free pages under a quarter of the live heap", sample{cycles: 7, allocated: 1000 * mib, objects: 150 * mib, live: 150 * mib, free: 30 * mib}, false},
		{"free pages under 16 MiB", sample{cycles: 7, allocated: 1000 * mib, objects: 20 * mib, live: 20 * mib, free: 10 * mib}, false},
		{"free pages while allocating", sample{cycles: 7, allocated: 1005 * mib, objects: 150 * mib, live: 150 * mib, free: 120 * mib}, false},
	} {
		if got := due(prev, c.cur); got != c.want {
			t.Errorf("%s: due = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRunCollectsTheGarbageABurstLeftOnceTheProcessIsQuiet: with the GC's own pacing off, a
// burst leaves 64 MiB of garbage; Run collects it within a few intervals, and the heap's objects
// shrink to about what is live.
func TestRunCollectsTheGarbageABurstLeftOnceTheProcessIsQuiet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	runtime.GC()
	burst := make([][]byte, 0, 64)
	for range 64 {
		burst = append(burst, make([]byte, 1<<20))
	}
	runtime.KeepAlive(burst)
	burst = nil
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	before, cycles := s[0].Value.Uint64(), s[1].Value.Uint64()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- run(ctx, 20*time.Millisecond, time.Hour, nil) }()
	testenv.WaitFor(t, 10*time.Second, "Run to collect", func() bool {
		metrics.Read(s)
		return s[1].Value.Uint64() > cycles
	})
	cancel()
	if n := <-done; n < 1 {
		t.Errorf("Run made %d collections, want at least 1", n)
	}
	metrics.Read(s)
	t.Logf("heap objects: %d MiB before, %d MiB after", before>>20, s[0].Value.Uint64()>>20)
	if after := s[0].Value.Uint64(); after > before-48<<20 {
		t.Errorf("heap objects %d → %d bytes, want 64 MiB of garbage gone", before, after)
	}
}

// TestRunReturnsThePagesOfGarbageTheGCAlreadyCollected: when the GC itself collects as a burst
// ends, no garbage is left, but the runtime keeps its free pages up to the next GC goal (twice
// the live heap): resident memory stayed 60 % over the heap in one BenchmarkBytesPerObject run
// in five. Run returns them once the process is quiet.
func TestRunReturnsThePagesOfGarbageTheGCAlreadyCollected(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64)) // a GOMEMLIMIT would have the scavenger return them
	live := make([][]byte, 0, 64)
	for range 64 {
		live = append(live, make([]byte, 1<<20)) // 64 MiB live: the next GC goal is twice that
	}
	// The goal from here on is the live heap's, whatever ran during the loop; and no collection
	// of the runtime's own during the burst.
	runtime.GC()
	percent := debug.SetGCPercent(-1)
	burst := make([][]byte, 0, 48)
	for range 48 {
		burst = append(burst, make([]byte, 1<<20))
	}
	runtime.KeepAlive(burst)
	debug.SetGCPercent(percent)
	runtime.GC() // the collection that ran as the burst ended
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	if free := s[0].Value.Uint64(); free < 32<<20 {
		t.Fatalf("%d MiB of free pages after the collection, want the burst's 48 (the runtime returned them itself)", free>>20)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, 20*time.Millisecond, time.Hour, nil) }()
	n := -1
	t.Cleanup(func() {
		cancel()
		if n < 0 {
			<-done // a failed wait: Run must not go on collecting under the next tests
		}
	})
	testenv.WaitFor(t, 10*time.Second, "Run to return the free pages", func() bool {
		metrics.Read(s)
		return s[0].Value.Uint64() < 16<<20
	})
	cancel()
	if n = <-done; n != 1 {
		t.Errorf("Run made %d collections, want 1", n)
	}
	runtime.KeepAlive(live)
}

// TestRunCollectsAtMostOncePerSpacing: bursts timed to make every check due (a client pausing
// after each) get one collection per spacing, not one per check.
func TestRunCollectsAtMostOncePerSpacing(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	checks := make(chan struct{}, 1)
	go func() {
		done <- run(ctx, 10*time.Millisecond, time.Hour, func() {
			select {
			case checks <- struct{}{}:
			default:
			}
		})
	}()
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	cycles := s[0].Value.Uint64()
	var garbage [][]byte
	for round := range 5 {
		for range 40 {
			garbage = append(garbage, make([]byte, 1<<20)) // a burst of 40 MiB
		}
		garbage = nil
		testenv.WaitFor(t, 10*time.Second, "a check after the burst", func() bool {
			metrics.Read(s)
			return round > 0 || s[0].Value.Uint64() > cycles // the first burst is collected
		})
		for range 3 { // the burst's pause: three checks, each due
			<-checks
		}
	}
	runtime.KeepAlive(garbage)
	cancel()
	if n := <-done; n != 1 {
		t.Errorf("%d collections for 5 bursts within the spacing, want 1", n)
	}
}
