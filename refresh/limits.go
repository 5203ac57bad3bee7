package refresh

// limits are the bounds of what refresh keeps per key outside L1.
type limits struct {
	TrackerBytes int64 // Tracker.MaxBytes
	QueueBytes   int64 // Pool.setMaxBytes
	QueueJobs    int   // newPool's queue
}

// limitsFor derives the limits from the L1 size: an eighth of it (at least 1 MiB) each for the
// tracker and the queue, so refresh adds at most a quarter of L1 (plus 2 MiB) to what L1 holds,
// whatever the number of keys. A record weighs about 360 bytes plus its key, so an eighth of L1
// still tracks more hot keys than most deployments have (about 11 000 with 32 MiB, 90 000 with
// the default 256 MiB); the job count follows from the bytes (a job weighs at least 256 bytes)
// and does not bind on its own. Fixed fractions rather than a setting: both bounds scale with
// the one memory setting operators already size.
func limitsFor(l1MaxBytes int64) limits {
	b := max(l1MaxBytes/8, 1<<20)
	return limits{TrackerBytes: b, QueueBytes: b, QueueJobs: int(b / jobOverhead)}
}
