package refresh

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
)

// jsonBody returns about n bytes of API-like JSON (objects of prices and ids, numbers that do
// not repeat), the same for every run.
func jsonBody(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n-2; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"pair":"ASSET%d-USD","price":%.6f,"volume":%d,"ts":%d,"open":true}`,
			r.IntN(1<<30), r.IntN(5000), r.Float64()*100, r.IntN(1e9), 1700000000+r.IntN(1e6))
	}
	b.WriteString("]}")
	return b.Bytes()[:max(n, 0)]
}

// BenchmarkCompressLevels measures what each level costs a fill on a 16 KiB and a 128 KiB JSON
// body (the README's Compression figures): ns/op, and the encoded size in % of the body.
func BenchmarkCompressLevels(b *testing.B) {
	for _, size := range []int{16 << 10, 128 << 10, 1 << 20} {
		body := jsonBody(size)
		for _, tt := range []struct {
			coding string
			level  int
		}{{"gzip", 1}, {"gzip", 5}, {"gzip", 6}, {"gzip", 9}, {"br", 1}, {"br", 4}, {"br", 5}, {"br", 6}, {"br", 9}} {
			b.Run(fmt.Sprintf("%dKiB/%s-%d", size>>10, tt.coding, tt.level), func(b *testing.B) {
				var buf bytes.Buffer
				gw, _ := gzip.NewWriterLevel(&buf, tt.level) // reused, as encode's pools do
				bw := brotli.NewWriterLevel(&buf, tt.level)
				for b.Loop() {
					buf.Reset()
					if tt.coding == "gzip" {
						gw.Reset(&buf)
						gw.Write(body)
						gw.Close()
					} else {
						bw.Reset(&buf)
						bw.Write(body)
						bw.Close()
					}
				}
				b.ReportMetric(100*float64(buf.Len())/float64(len(body)), "%size")
			})
		}
	}
}
