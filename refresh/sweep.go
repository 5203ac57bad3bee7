package refresh

// The tracker's sweep: sharing hot keys with other instances, forgetting cold ones.

import (
	"context"
	"time"
)

// Run shares this instance's hot keys through Redis every few seconds, forgets keys that went
// cold and, when the tracker is full, the records nobody asked for since their copy was stored
// and the fills remembered (those not shared yet miss the fleet's hot set).
// It blocks until ctx is cancelled and returns nil.
func (t *Tracker) Run(ctx context.Context) error {
	if t.Window <= 0 {
		<-ctx.Done()
		return nil
	}
	every := min(t.Window/4, 5*time.Second)
	tick := time.NewTicker(min(every, time.Second))
	defer tick.Stop()
	since, shared := time.Now().Unix(), time.Now()
	var seen uint64 // t.droppable at the last sweep for room
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := time.Now()
		share := now.Sub(shared) >= every
		// Room for new keys: drop the records whose copy nobody asked for, and the fills
		// remembered. Records asked for, or kept warm (their last copy was asked for and
		// refreshed ahead), stay until their window passes: keys kept warm stay warm, and a
		// flood of keys more than the tracker holds does not churn it. A tracker full of such
		// records is walked for room again only once t.droppable moved, or in the sharing walk.
		n := t.droppable.Load()
		room := (share || n != seen) && (t.pressure.Swap(false) || t.bytes.Load() > t.maxBytes()/8*7)
		if !room && !share {
			continue
		}
		if room {
			seen = n
			t.roomSweeps.Add(1)
		}
		cold := now.Add(-t.Window).Unix()
		var touched []string
		t.keys().Range(func(_ string, h *hot) bool {
			if (room && t.dropUnasked(h)) || !share {
				return true
			}
			switch last := h.last.Load(); {
			case last >= since:
				touched = append(touched, h.key())
			case last < cold:
				t.forget(h) // a refresh job still queued for it finds nothing
			}
			return true
		})
		if room {
			t.dropFilled(now.Unix()) // before they are shared: the records need the room more
		}
		if !share {
			continue
		}
		shared = now
		touched = t.sweepFilled(touched, since, cold)
		since = now.Unix()
		if err := t.Store.MarkHot(ctx, touched, t.Window); err != nil {
			t.Log.Debug("sharing hot keys failed", "err", err)
		}
	}
}

// dropUnasked forgets h if nobody asked for its copy since it was stored and its key is not
// kept warm, and reports whether it did.
func (t *Tracker) dropUnasked(h *hot) bool {
	if h.demand.Load() || h.kept.Load() {
		return false
	}
	t.forget(h)
	return true
}
