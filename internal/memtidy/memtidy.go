// Package memtidy collects the garbage a burst of work leaves behind once the process goes
// quiet. The Go GC runs when the heap grows by GOGC percent over the live heap; a cache that
// fills many keys and then serves them from memory (a hit allocates nothing) would keep up to a
// live heap's worth of the burst's garbage resident until the runtime's forced collection,
// every two minutes, and its scavenger returned the pages. Run notices the lull and collects
// then, returning the freed memory to the operating system at once: RSS follows what is live.
// When the GC itself collected as the burst ended, the garbage is gone but its pages are not:
// the scavenger keeps free pages up to the next GC goal (twice the live heap by default), so Run
// also returns those once the process is quiet (with a collection too, debug.FreeOSMemory's
// way: at most once per Spacing, and only in a lull, so it costs nothing under load).
package memtidy

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Thresholds of a collection. Garbage is the heap's objects beyond what the last collection
// found live; free pages are heap memory the runtime holds for no object and has not returned
// to the system; the process is quiet when it allocated less than quietBytes, or a 64th of the
// live heap, in the last interval (a scrape of the metrics, a few requests).
const (
	minSpare   = 16 << 20 // below this (garbage and free pages), a collection is not worth it
	quietBytes = 4 << 20
)

// sample is what Run reads of the runtime each interval.
type sample struct {
	cycles    uint64 // GC cycles completed
	allocated uint64 // bytes allocated since the start (cumulative)
	objects   uint64 // bytes of heap objects now, live or garbage
	live      uint64 // the heap found live by the last collection
	free      uint64 // free heap pages not returned to the system
}

var names = []string{"/gc/cycles/total:gc-cycles", "/gc/heap/allocs:bytes", "/memory/classes/heap/objects:bytes", "/gc/heap/live:bytes",
	"/memory/classes/heap/free:bytes"}

func read(s []metrics.Sample) sample {
	metrics.Read(s)
	return sample{cycles: s[0].Value.Uint64(), allocated: s[1].Value.Uint64(), objects: s[2].Value.Uint64(), live: s[3].Value.Uint64(),
		free: s[4].Value.Uint64()}
}

// due reports whether the process should collect now: no collection ran since prev, it
// allocated little since prev (the burst is over: under quietBytes or a 64th of the live heap),
// and what a collection would give back, the garbage and the free pages, is at least a quarter
// of the live heap and minSpare.
func due(prev, cur sample) bool {
	if cur.cycles != prev.cycles || cur.allocated-prev.allocated >= max(quietBytes, cur.live/64) {
		return false
	}
	spare := cur.free
	if cur.objects > cur.live {
		spare += cur.objects - cur.live
	}
	return spare >= minSpare && spare >= cur.live/4
}

// Interval is how often Run checks for a lull; Spacing the least time between two of its
// collections, so that a client timing bursts of work cannot make it collect more often.
const (
	Interval = 2 * time.Second
	Spacing  = 10 * time.Second
)

// Run checks every Interval until ctx ends, and collects (debug.FreeOSMemory) when due, at most
// once per Spacing. It returns nil when ctx ends.
func Run(ctx context.Context) error {
	run(ctx, Interval, Spacing, nil)
	return nil
}

// run is Run with its interval and spacing; checked, if set, is called after each check. It
// returns how many collections it made.
func run(ctx context.Context, interval, spacing time.Duration, checked func()) int {
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	prev, n := read(s), 0
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return n
		case <-tick.C:
		}
		cur := read(s)
		if due(prev, cur) && (last.IsZero() || time.Since(last) >= spacing) {
			debug.FreeOSMemory()
			last = time.Now()
			n++
			cur = read(s)
		}
		prev = cur
		if checked != nil {
			checked()
		}
	}
}
