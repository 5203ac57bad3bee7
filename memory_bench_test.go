package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

// BenchmarkBytesPerObject is issue 14's figure: what one cached 1 KiB JSON object costs the
// production binary (a child process), in RSS and in Go heap, with 100 000 distinct objects in an
// L1 large enough for all of them, L2 on (a redis-server of its own) and refresh-ahead on, the
// defaults, with compression on (the default: each object also keeps its gzip and br codings)
// and off. It reports rss-B/object (the RSS grown over the base, once the GC settled) and
// heap-B/object (heap in use over the base) of the instance that filled them from the origin,
// and promoted-rss-B/object and promoted-heap-B/object of a second instance of its fleet that
// found them all in L2. Varnish needs about 2 041 bytes for the same objects, a bare Go map
// 1 680. Run it with -benchtime=1x: each run starts its own children.
//
//	go test -run '^$' -bench BytesPerObject -benchtime=1x .
func BenchmarkBytesPerObject(b *testing.B) {
	const objects = 100_000
	bin, err := buildBinary()
	if err != nil {
		b.Fatal(err)
	}
	rs := redistest.Start(b)
	// 1 KiB of JSON (a price record, compressible as real data is), stored with its gzip and br
	// codings by default, or alone with SWR_COMPRESS=off.
	body := []byte(`{"pair":"ALGO-USD","bids":[`)
	for i := 0; len(body) < 1000; i++ {
		body = fmt.Appendf(body, `["0.%04d","%d.%02d"],`, 1834-i, 100+i*7, i%100)
	}
	body = append(body[:len(body)-1], "]}"...)
	body = append(body, bytes.Repeat([]byte(" "), 1024-len(body))...)
	o := newOrigin(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	for _, compress := range []string{"br,gzip", "off"} {
		b.Run("compress="+compress, func(b *testing.B) {
			for range b.N {
				env := map[string]string{"SWR_L1_MAX_BYTES": "1GiB", "SWR_L1_MAX_TTL": "10m", "SWR_REDIS_URL": rs.URL(), "SWR_COMPRESS": compress}
				// The instance that fills every object from the origin, then one of its fleet
				// that finds them all in L2: promoted entries are decoded from Redis's bytes.
				filled := measureChild(b, o.URL, env, bin, objects, func() {
					if err := rs.Client().FlushAll(context.Background()).Err(); err != nil { // each run starts empty
						b.Fatal(err)
					}
				}, nil)
				env["SWR_WARM_BYTES"] = "0" // every object promoted by a request, none loaded at start
				promoted := measureChild(b, o.URL, env, bin, objects, nil, func(c *child) {
					if m := storedRE.FindStringSubmatch(get(b, "http://"+c.addr+"/_swr/metrics").Body); m == nil || m[1] != "0" {
						b.Fatalf("the second instance filled %v objects from the origin (L2 reads timed out?): its figure is not the promoted objects'", m)
					}
				})
				b.ReportMetric(filled.rss, "rss-B/object")
				b.ReportMetric(filled.heap, "heap-B/object")
				b.ReportMetric(promoted.rss, "promoted-rss-B/object")
				b.ReportMetric(promoted.heap, "promoted-heap-B/object")
			}
		})
	}
}

// perObject is what each object costs a child once loaded: RSS and heap in use, in bytes.
type perObject struct{ rss, heap float64 }

// measureChild starts a child (after before, if any), loads the objects into it, checks it
// (check, if any) and stops it by PID (its sweeps and collections would disturb the next one).
// A child whose Redis calls stalled on this loaded machine opened its breaker and dropped its L1
// when Redis answered again (invalidations may have been missed): its figure would not be the
// objects', and it is measured again, three times at most.
func measureChild(b *testing.B, upstream string, env map[string]string, bin string, objects int, before func(), check func(*child)) perObject {
	b.Helper()
	for attempt := 1; ; attempt++ {
		if before != nil {
			before()
		}
		c := startChild(b, upstream, env, bin)
		got, err := loadObjects(b, c, objects)
		if err == nil && check != nil {
			check(c)
		}
		c.cmd.Process.Kill()
		<-c.exited
		if err == nil {
			return got
		}
		if attempt == 3 {
			b.Fatalf("%v (three times)\n%s", err, c.logs.String())
		}
		b.Logf("measuring again: %v", err)
	}
}

// loadObjects asks c for /obj/0 … /obj/<objects-1> and measures what stays resident once the
// GC settled (not the garbage of the load). It fails when c's L1 does not hold them all then.
func loadObjects(b *testing.B, c *child, objects int) (perObject, error) {
	before, heapBefore := c.status(b, "VmRSS")[0], heapInuse(b, c)
	if ok := drive(b, c.addr, objects, 16, 16, func(i int) string { return "/obj/" + strconv.Itoa(i) }, time.Now().Add(5*time.Minute)); ok != int64(objects) {
		b.Fatalf("%d of %d requests answered 200", ok, objects)
	}
	var rss, heap int64
	for range 30 { // 15 s: memtidy collects once the load is over, within its spacing
		time.Sleep(500 * time.Millisecond) // the GC's schedule is the process's own: sample it a few times
		if r := c.status(b, "VmRSS")[0]; rss == 0 || r < rss {
			rss = r
		}
		if h := heapInuse(b, c); heap == 0 || h < heap {
			heap = h
		}
	}
	var held float64 = -1
	if m := l1ObjectsRE.FindStringSubmatch(get(b, "http://"+c.addr+"/_swr/metrics").Body); m != nil {
		held, _ = strconv.ParseFloat(m[1], 64) // Prometheus may print 1e+06
	}
	if held != float64(objects) {
		return perObject{}, fmt.Errorf("L1 holds %v objects of %d once loaded, not all: is the machine overloaded?", held, objects)
	}
	b.Logf("%d objects: RSS %d → %d MiB, heap in use %d → %d MiB; %s", objects, before>>20, rss>>20, heapBefore>>20, heap>>20,
		c.metrics(b, "swrproxy_l1_bytes", "swrproxy_l1_objects", "swrproxy_requests_total", "swrproxy_compressed_total", "swrproxy_compress_busy_total",
			"swrproxy_fills_stored_total", "swrproxy_refresh_tracked_keys"))
	return perObject{float64(rss-before) / float64(objects), float64(heap-heapBefore) / float64(objects)}, nil
}

var storedRE = regexp.MustCompile(`(?m)^swrproxy_fills_stored_total (\S+)`)

var l1ObjectsRE = regexp.MustCompile(`(?m)^swrproxy_l1_objects (\S+)`)

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
