// Package redisclock estimates a Redis server's clock from the server times its scripts return
// (redis.call('TIME')), without trusting this host's wall clock: the offset is kept against the
// monotonic clock. The fetch lock (tiers) and the fleet's origin budget (upstream) use it to give
// each Redis call a limit in server time past which the script refuses to write.
package redisclock

import (
	"sync/atomic"
	"time"
)

// Clock is the estimate. The zero value has no sample yet. Safe for concurrent use.
type Clock struct {
	// off is the server time (ms) of the latest sample minus the monotonic time at which its
	// call was sent: an upper bound of the true offset (the script ran after the call was
	// sent), so limits err late. 0 = no sample yet.
	off atomic.Int64
}

// epoch anchors the monotonic milliseconds of every Clock.
var epoch = time.Now()

func monoMs(t time.Time) int64 { return t.Sub(epoch).Milliseconds() }

// Sample records that a call sent at local instant sent was answered with server time serverMs
// (ms since the Unix epoch); the latest sample replaces the others.
func (c *Clock) Sample(sent time.Time, serverMs int64) {
	if off := serverMs - monoMs(sent); off != 0 {
		c.off.Store(off)
	}
}

// At returns the server time (ms) at local instant t, and false without a sample.
func (c *Clock) At(t time.Time) (int64, bool) {
	off := c.off.Load()
	return monoMs(t) + off, off != 0
}
