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
	var seen uint64 // t.droppable when the last sweep for room began
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := time.Now()
		share := now.Sub(shared) >= every
		room := false
		if t.pressure.Swap(false) || t.bytes.Load() > t.maxBytes()/8*7 {
			// Room for new keys: drop the records whose copy nobody asked for. A record whose
			// copy was asked for, or whose key is kept warm (its last copy was asked for and
			// refreshed ahead), stays until its window passes: keys kept warm stay warm, and a
			// flood of keys more than the tracker holds does not churn it. Such a flood keeps
			// the tracker full of records that all stay, so the sweep runs at a tick only when
			// something may have become droppable since the last (t.droppable moved), else with
			// the sharing sweep, in the same walk: a million polled keys do not make Run walk
			// every record each second (7 % of the process's CPU in a bench/wrk.sh run).
			if n := t.droppable.Load(); n != seen || share {
				seen, room = n, true
				t.roomSweeps.Add(1)
			}
		}
		if !share {
			if room {
				t.keys().Range(func(_ string, h *hot) bool {
					t.dropUnasked(h)
					return true
				})
				t.dropFilled(now.Unix())
			}
			continue
		}
		shared = now
		cold := now.Add(-t.Window).Unix()
		var touched []string
		t.keys().Range(func(_ string, h *hot) bool {
			if room && t.dropUnasked(h) {
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
