package proxy

// HandlerStats is a snapshot of what the handler served: a struct of values, safe to keep.
type HandlerStats struct {
	HitL1, HitL2       int64 // fresh copies served from each tier
	Miss               int64 // fetched from the origin while the client waited
	Stale              int64 // stale copies served (revalidating, or standing in for a failed origin)
	StaleIfError       int64 // of Stale: because the origin failed (RFC 5861)
	Bypass             int64 // passed through, not cacheable
	NotModified        int64 // answered 304 from cache
	Errors             int64 // origin failures that became 502/504 with no stale copy to stand in
	WriteInvalidations int64 // keys cleared after successful unsafe requests (RFC 9111 §4.4)
	RepliesGzip        int64 // replies from cache sent gzip-coded (a stored coding, SWR_COMPRESS)
	RepliesBr          int64 // replies from cache sent br-coded
	// ClientSuccess and ClientFailed count the answers to clients (weldr's "client" counts):
	// status below 500, or 500 and above.
	ClientSuccess, ClientFailed int64
}

// Stats returns the current counts. Safe for concurrent use; the counts are read one by one,
// so requests served meanwhile may be in some and not yet in others.
func (h *Handler) Stats() HandlerStats {
	s := &h.stats
	return HandlerStats{
		HitL1:              s.HitL1.Load(),
		HitL2:              s.HitL2.Load(),
		Miss:               s.Miss.Load(),
		Stale:              s.Stale.Load(),
		StaleIfError:       s.StaleIfError.Load(),
		Bypass:             s.Bypass.Load(),
		NotModified:        s.NotModified.Load(),
		Errors:             s.Errors.Load(),
		WriteInvalidations: s.WriteInvalidations.Load(),
		RepliesGzip:        s.RepliesGzip.Load(),
		RepliesBr:          s.RepliesBr.Load(),
		ClientSuccess:      s.ClientSuccess.Load(),
		ClientFailed:       s.ClientFailed.Load(),
	}
}
