package refresh

import (
	"hash/maphash"
	"sync/atomic"
)

// stripedCounter is a counter that many goroutines add to at once without sharing one cache
// line: each key adds to one of its stripes, chosen by the key's hash.
type stripedCounter struct {
	stripes [16]struct {
		n atomic.Int64
		_ [56]byte // one stripe per 64-byte cache line
	}
}

var stripeSeed = maphash.MakeSeed()

func (c *stripedCounter) add(key string) {
	c.stripes[maphash.String(stripeSeed, key)%uint64(len(c.stripes))].n.Add(1)
}

func (c *stripedCounter) load() int64 {
	var n int64
	for i := range c.stripes {
		n += c.stripes[i].n.Load()
	}
	return n
}
