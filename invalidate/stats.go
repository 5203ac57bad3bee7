package invalidate

import "context"

// Stats is a snapshot of the service's counts: a struct of values, safe to keep.
type Stats struct {
	Requests  int64 // invalidations received (endpoint, PURGE, writes)
	Cleared   int64 // keys cleared
	Refreshed int64 // keys marked stale and queued for a refresh
}

// Stats returns the service's counts. Safe for concurrent use.
func (s *Service) Stats() Stats {
	return Stats{Requests: s.requests.Load(), Cleared: s.cleared.Load(), Refreshed: s.refreshed.Load()}
}

// BusStats is a snapshot of the bus: a struct of values, safe to keep.
type BusStats struct {
	Live int // instances that beat the heartbeat recently (this one included); 0 if Redis cannot tell
}

// Stats asks Redis how many instances are live (at most 1 s). Safe for concurrent use.
func (b *Bus) Stats() BusStats {
	return BusStats{Live: b.Live(context.Background())}
}
