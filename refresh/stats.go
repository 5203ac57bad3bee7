package refresh

// FillerStats is a snapshot of the filler's work: a struct of values, safe to keep.
type FillerStats struct {
	OriginRequests int64 // requests sent to the origin
	OriginErrors   int64 // origin failures: no response, broken body, 5xx
	Stored         int64 // responses stored
	Revalidated    int64 // 304 answers that renewed an entry
	SharedLocal    int64 // callers served by another caller's fetch in this process
	SharedRemote   int64 // fetches answered by another instance's fetch via Redis
	// CompressedGzip and CompressedBrotli count the bodies stored with that coding
	// (SWR_COMPRESS); the Saved counts sum what each stored coding saves on the identity body.
	CompressedGzip, CompressedBrotli int64
	SavedGzip, SavedBrotli           int64
	// CompressBusy counts the compressible bodies stored without codings because as many fills
	// as the bound allows were compressing.
	CompressBusy int64
}

// Stats returns the current counts. Safe for concurrent use.
func (f *Filler) Stats() FillerStats {
	s := &f.stats
	c := &f.compressStats
	return FillerStats{
		CompressedGzip:   c.gzip.Load(),
		CompressedBrotli: c.br.Load(),
		SavedGzip:        c.gzipSaved.Load(),
		SavedBrotli:      c.brSaved.Load(),
		CompressBusy:     c.busy.Load(),
		OriginRequests:   s.OriginRequests.Load(),
		OriginErrors:     s.OriginErrors.Load(),
		Stored:           s.Stored.Load(),
		Revalidated:      s.Revalidated.Load(),
		SharedLocal:      s.SharedLocal.Load(),
		SharedRemote:     s.SharedRemote.Load(),
	}
}

// PoolStats is a snapshot of the refresh pool: a struct of values, safe to keep.
type PoolStats struct {
	Done, Failed, Skipped int64 // jobs by outcome
	Overflow              int64 // jobs dropped because the queue was full of sooner ones
	Queued                int   // jobs waiting
	QueuedBytes           int64 // their weight
}

// Stats returns the pool's counts and queue size. Safe for concurrent use.
func (p *Pool) Stats() PoolStats {
	return PoolStats{
		Done:        p.done.Load(),
		Failed:      p.failed.Load(),
		Skipped:     p.skipped.Load(),
		Overflow:    p.overflow.Load(),
		Queued:      p.Len(),
		QueuedBytes: p.Bytes(),
	}
}

// TrackerStats is a snapshot of the hot-key tracker: a struct of values, safe to keep.
type TrackerStats struct {
	Records   int   // key variants tracked
	Bytes     int64 // their weight
	Untracked int64 // requests for keys the full tracker had no room for
}

// Stats returns the tracker's size and counts. Safe for concurrent use.
func (t *Tracker) Stats() TrackerStats {
	records, bytes := t.Size()
	return TrackerStats{Records: records, Bytes: bytes, Untracked: t.untracked.load()}
}
