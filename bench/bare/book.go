package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// bookSizes are the order-book bodies bench/e2e.sh measures, by path: 1, 16 and 128 KiB.
var bookSizes = []struct {
	path string
	size int
}{
	{"/api/book/1k", 1 << 10},
	{"/api/book/16k", 16 << 10},
	{"/api/book/128k", 128 << 10},
}

// orderBook returns a JSON order book of exactly size bytes: bid and ask levels around a mid
// price, as an exchange's depth endpoint answers. It compresses the way such data does (repeated
// keys, prices that share their leading digits, random quantities), unlike a run of one byte. The
// generator has a fixed seed, so every process (the origin, the bare server) and every run builds
// the same bytes. The body is padded to size with JSON whitespace before the closing brace.
func orderBook(size int) []byte {
	rng := rand.New(rand.NewPCG(14, uint64(size))) // PCG's output is specified: stable across Go versions
	level := func(px float64) string {
		qty := float64(rng.IntN(5_000_000)) / 1e6
		return `{"px":"` + strconv.FormatFloat(px, 'f', 2, 64) + `","qty":"` +
			strconv.FormatFloat(qty, 'f', 6, 64) + `","orders":` + strconv.Itoa(1+rng.IntN(40)) + `}`
	}
	head := fmt.Sprintf(`{"pair":"BTC-USD","seq":%d,"ts":"2025-06-01T12:00:00.000Z","bids":[`, 18_204_771_000+size)
	const mid, tick = 64210.50, 0.50
	var bids, asks []string
	n := func() int { // the length of the body with the levels so far, without padding
		return len(head) + len(strings.Join(bids, ",")) + len(`],"asks":[`) + len(strings.Join(asks, ",")) + len(`]}`)
	}
	for i := 1; ; i++ {
		b, a := level(mid-float64(i)*tick), level(mid+float64(i)*tick)
		if n()+len(b)+len(a)+2 > size {
			break
		}
		bids, asks = append(bids, b), append(asks, a)
	}
	body := head + strings.Join(bids, ",") + `],"asks":[` + strings.Join(asks, ",") + `]`
	return []byte(body + strings.Repeat(" ", max(size-len(body)-1, 0)) + "}")
}
