package tiers

// StoreStats is a snapshot of the store: a struct of values, safe to keep.
type StoreStats struct {
	L1Objects int    // objects (URLs) in L1
	L1Bytes   uint64 // their weight
	L2Errors  int64  // failed Redis calls since start
	L2Open    bool   // the Redis circuit is open (L2 skipped)
}

// Stats returns the store's size and counts. Safe for concurrent use.
func (s *Store) Stats() StoreStats {
	objects, bytes := s.L1Stats()
	return StoreStats{L1Objects: objects, L1Bytes: bytes, L2Errors: s.L2Errors(), L2Open: s.L2Open()}
}
