package upstream

import (
	"slices"
	"sync"
	"time"
)

// latencySamples is how many recent exchanges a backend remembers for its percentiles: a bound
// on memory (4 KiB a backend) that still holds a minute of moderate traffic.
const latencySamples = 256

// latencyWindow is how far back the percentiles of GET /_swr/servers look.
const latencyWindow = time.Minute

// latencies is a ring of a backend's recent times to response headers. Safe for concurrent use.
type latencies struct {
	mu   sync.Mutex
	at   [latencySamples]int64 // monotonic ns since epoch of each sample; 0 = empty
	took [latencySamples]time.Duration
	next int
}

// epoch anchors the monotonic timestamps of the ring.
var epoch = time.Now()

func (l *latencies) observe(now time.Time, d time.Duration) {
	l.mu.Lock()
	l.at[l.next], l.took[l.next] = max(now.Sub(epoch).Nanoseconds(), 1), d
	l.next = (l.next + 1) % latencySamples
	l.mu.Unlock()
}

// Latency is a backend's time to response headers over the last minute of its remembered
// exchanges (at most 256): the median and the 99th percentile, in milliseconds.
type Latency struct {
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Samples int     `json:"samples"`
}

func (l *latencies) summary(now time.Time) Latency {
	var buf [latencySamples]time.Duration
	recent := buf[:0]
	since := now.Add(-latencyWindow).Sub(epoch).Nanoseconds()
	l.mu.Lock()
	for i, at := range l.at {
		if at != 0 && at >= since {
			recent = append(recent, l.took[i])
		}
	}
	l.mu.Unlock()
	if len(recent) == 0 {
		return Latency{}
	}
	slices.Sort(recent)
	ms := func(q float64) float64 {
		// nearest rank: the smallest sample at or above the q quantile
		i := int(q*float64(len(recent))+0.999999) - 1
		return float64(recent[max(i, 0)].Microseconds()) / 1000
	}
	return Latency{P50: ms(0.50), P99: ms(0.99), Samples: len(recent)}
}
