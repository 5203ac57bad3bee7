package main

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

// BenchmarkBytesPerObject is issue 14's figure: what one cached 1 KiB object costs the
// production binary (a child process), in RSS and in Go heap, with 100 000 distinct objects in an
// L1 large enough for all of them, L2 on (a redis-server of its own) and refresh-ahead on, the
// defaults. It reports rss-B/object (the RSS grown over the base, once the GC settled) and
// heap-B/object (heap in use over the base). Varnish needs about 2 041 bytes for the same
// objects, a bare Go map 1 680. Run it with -benchtime=1x: each run starts its own child.
//
//	go test -run '^$' -bench BytesPerObject -benchtime=1x .
func BenchmarkBytesPerObject(b *testing.B) {
	const objects = 100_000
	bin, err := buildBinary()
	if err != nil {
		b.Fatal(err)
	}
	rs := redistest.Start(b)
	o := sizedOrigin(b, 1<<10, 3600)
	for range b.N {
		c := startChild(b, o.URL, map[string]string{"SWR_L1_MAX_BYTES": "1GiB", "SWR_REDIS_URL": rs.URL()}, bin)
		before, heapBefore := c.status(b, "VmRSS")[0], heapInuse(b, c)
		start := time.Now()
		if ok := drive(b, c.addr, objects, 16, 16, func(i int) string { return "/obj/" + strconv.Itoa(i) }, start.Add(5*time.Minute)); ok != objects {
			b.Fatalf("%d of %d requests answered 200", ok, objects)
		}
		// Let the GC run (the figure is what stays resident, not the garbage of the run).
		var rss, heap int64
		for range 10 {
			time.Sleep(500 * time.Millisecond) // the GC's schedule is the process's own: sample it a few times
			if r := c.status(b, "VmRSS")[0]; rss == 0 || r < rss {
				rss = r
			}
			if h := heapInuse(b, c); heap == 0 || h < heap {
				heap = h
			}
		}
		b.ReportMetric(float64(rss-before)/objects, "rss-B/object")
		b.ReportMetric(float64(heap-heapBefore)/objects, "heap-B/object")
		b.Logf("%d objects: RSS %d → %d MiB, heap in use %d → %d MiB; %s", objects, before>>20, rss>>20, heapBefore>>20, heap>>20,
			c.metrics(b, "swrproxy_l1_bytes", "swrproxy_l1_objects", "swrproxy_refresh_tracked_keys"))
	}
}

var heapInuseRE = regexp.MustCompile(`(?m)^go_memstats_heap_inuse_bytes (\S+)`)

// heapInuse is the child's Go heap in use, from its metrics.
func heapInuse(tb testing.TB, c *child) int64 {
	tb.Helper()
	m := heapInuseRE.FindStringSubmatch(get(tb, "http://"+c.addr+"/_swr/metrics").Body)
	if m == nil {
		tb.Fatal("no go_memstats_heap_inuse_bytes in /_swr/metrics")
	}
	var v float64
	fmt.Sscanf(m[1], "%g", &v)
	return int64(v)
}
