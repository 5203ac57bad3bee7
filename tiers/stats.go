package tiers

import "time"

// StoreStats is a snapshot of the store: a struct of values, safe to keep.
type StoreStats struct {
	L1Objects int    // objects (URLs) in L1
	L1Bytes   uint64 // their weight
	L2Errors  int64  // failed Redis calls since start
	L2Open    bool   // the Redis circuit is open (L2 skipped)
	// WarmKeys and WarmBytes count what Warm copied from the fleet's hot set into L1;
	// WarmSeconds is how long the last warm-up took.
	WarmKeys, WarmBytes int64
	WarmSeconds         float64
}

// Stats returns the store's size and counts. Safe for concurrent use.
func (s *Store) Stats() StoreStats {
	objects, bytes := s.L1Stats()
	return StoreStats{L1Objects: objects, L1Bytes: bytes, L2Errors: s.L2Errors(), L2Open: s.L2Open(),
		WarmKeys: s.warmKeys.Load(), WarmBytes: s.warmBytes.Load(), WarmSeconds: time.Duration(s.warmNanos.Load()).Seconds()}
}
