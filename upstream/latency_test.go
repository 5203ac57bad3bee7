package upstream

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

func TestLatencyPercentilesAreNearestRank(t *testing.T) {
	tests := []struct {
		name     string
		ms       []int // samples, in any order
		p50, p99 float64
	}{
		{"none", nil, 0, 0},
		{"one", []int{7}, 7, 7},
		{"two", []int{10, 20}, 10, 20},
		{"four", []int{4, 1, 3, 2}, 2, 4},
		{"1 to 100", shuffled(1, 100), 50, 99},
		{"1 to 200", shuffled(1, 200), 100, 198},
		{"1 to 256", shuffled(1, 256), 128, 254},
	}
	now := time.Now()
	for _, tt := range tests {
		var l latencies
		for _, ms := range tt.ms {
			l.observe(now, time.Duration(ms)*time.Millisecond)
		}
		got := l.summary(now)
		want := Latency{P50: tt.p50, P99: tt.p99, Samples: len(tt.ms)}
		if got != want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, want)
		}
	}
}

func shuffled(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

func TestLatencyLooksBackOneMinute(t *testing.T) {
	var l latencies
	now := epoch.Add(10 * time.Minute) // samples are never older than the process
	for range 50 {
		l.observe(now.Add(-2*time.Minute), 10*time.Second) // long gone
	}
	l.observe(now.Add(-61*time.Second), 9*time.Second)
	for ms := 1; ms <= 10; ms++ {
		l.observe(now.Add(-30*time.Second), time.Duration(ms)*time.Millisecond)
	}
	l.observe(now.Add(-59*time.Second), 1500*time.Microsecond)
	got := l.summary(now)
	if want := (Latency{P50: 5, P99: 10, Samples: 11}); got != want {
		t.Errorf("summary = %+v, want %+v (only the last minute's 11 samples)", got, want)
	}
	if got := l.summary(now.Add(31 * time.Second)); got != (Latency{}) {
		t.Errorf("a minute after the last sample: %+v, want none", got)
	}
}

func TestLatencyRemembersTheLatestSamplesOnly(t *testing.T) {
	var l latencies
	now := time.Now()
	for range latencySamples {
		l.observe(now, time.Second)
	}
	for range 100 {
		l.observe(now, time.Millisecond) // overwrite the oldest 100
	}
	got := l.summary(now)
	if got.Samples != latencySamples || got.P50 != 1000 || got.P99 != 1000 {
		t.Errorf("after %d + 100 samples: %+v, want %d samples, the 100 newest fast", latencySamples, got, latencySamples)
	}
	for range latencySamples {
		l.observe(now, 2*time.Millisecond)
	}
	if got := l.summary(now); got != (Latency{P50: 2, P99: 2, Samples: latencySamples}) {
		t.Errorf("after a full turn of 2ms samples: %+v", got)
	}
}

func TestServersReportTheLatencyOfRealExchanges(t *testing.T) {
	b := startBackend(t, "a")
	c := newPool(t, Options{}, b.url)
	for range 5 {
		mustFetch(t, c, "", "/x")
	}
	resp := open(t, c, "", "/500")
	resp.Body.Close()
	s := server(t, c, b.url)
	if s.Latency.Samples != 6 || s.Latency.P50 <= 0 || s.Latency.P99 < s.Latency.P50 || s.Latency.P99 > 2000 {
		t.Errorf("latency = %+v, want 6 samples of a few ms", s.Latency)
	}
	if s.Success != 5 || s.Failed != 1 || s.InFlight != 0 {
		t.Errorf("server = %+v, want 5 successes, 1 failed", s)
	}
	if _, err := fetch(c, &Request{Method: http.MethodGet, URI: "/drop"}); err == nil {
		t.Fatal("GET /drop: no error")
	}
	if s := server(t, c, b.url); s.Latency.Samples != 6 {
		t.Errorf("an exchange without an answer added a latency sample: %+v", s.Latency)
	}
}
