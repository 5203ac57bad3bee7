package config

import (
	"slices"
	"testing"
)

func TestCompressOffOrEmptyStoresNoCodings(t *testing.T) {
	m := map[string]string{"SWR_UPSTREAM": "http://origin"}
	for _, v := range []string{"off", "OFF", "", " "} {
		m["SWR_COMPRESS"] = v
		c, err := LoadLookup(func(k string) (string, bool) { v, ok := m[k]; return v, ok }, nil)
		if err != nil || c.Compress != nil {
			t.Errorf("SWR_COMPRESS=%q: Compress = %q, %v; want none", v, c.Compress, err)
		}
	}
	c := mustLoad(t, map[string]string{"SWR_UPSTREAM": "http://origin", "SWR_COMPRESS": "gzip", "SWR_COMPRESS_MIN_BYTES": "0"})
	if !slices.Equal(c.Compress, []string{"gzip"}) || c.CompressMinBytes != 0 {
		t.Errorf("SWR_COMPRESS=gzip, SWR_COMPRESS_MIN_BYTES=0: Compress = %q, CompressMinBytes = %d", c.Compress, c.CompressMinBytes)
	}
}
