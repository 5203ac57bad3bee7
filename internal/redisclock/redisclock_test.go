package redisclock

import (
	"sync"
	"testing"
	"time"
)

func TestWithoutASampleTheClockSaysSo(t *testing.T) {
	var c Clock
	if _, ok := c.At(time.Now()); ok {
		t.Error("At reports a server time before any sample")
	}
}

func TestTheServerTimeFollowsTheMonotonicClockFromTheLatestSample(t *testing.T) {
	var c Clock
	sent := time.Now()
	const server = 1_700_000_000_000 // ms
	c.Sample(sent, server)
	for _, d := range []time.Duration{0, 1500 * time.Millisecond, time.Hour} {
		if got, ok := c.At(sent.Add(d)); !ok || got != server+d.Milliseconds() {
			t.Errorf("At(sent+%v) = %d, %v; want %d, true", d, got, ok, server+d.Milliseconds())
		}
	}
	// A later answer corrects the estimate, in either direction.
	c.Sample(sent, server-10_000)
	if got, _ := c.At(sent); got != server-10_000 {
		t.Errorf("after a second sample At(sent) = %d, want %d", got, server-10_000)
	}
}

func TestSamplesAndReadsMayRunAtOnce(t *testing.T) {
	var c Clock
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 100 {
				now := time.Now()
				c.Sample(now, 1_700_000_000_000+int64(i*100+j))
				if _, ok := c.At(now); !ok {
					t.Error("At reports no sample after one")
					return
				}
			}
		})
	}
	wg.Wait()
}
