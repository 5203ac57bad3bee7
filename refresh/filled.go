package refresh

import "sync"

// filledKeys remembers when this instance filled keys that have no record, or first served them
// from L2 (PromotedAt; a second request within the window makes the record): a request makes its
// key hot (invalidation mode auto refreshes it, the fleet's hot set lists it for warm starts)
// even if nobody asks for it again, but only a key asked for again is refreshed ahead and needs
// a record. So a key asked for once costs its map entry here (about filledOverhead bytes, the
// key's string being the entry's), not a record.
type filledKeys struct {
	mu   sync.Mutex
	last map[string]int64 // key → Unix second of its latest fill
}

// filledOverhead is what one remembered key costs besides its string: the map's slot (key
// header, value, hash bits) and its share of the map's spare room.
const filledOverhead = 64

func filledWeight(key string) int64 { return filledOverhead + int64(len(key)) }

// fill remembers key's fill at now, within the tracker's MaxBytes; false when there is no room.
func (t *Tracker) fill(key string, now int64) bool {
	f := &t.filled
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.last[key]; !ok {
		w := filledWeight(key)
		if t.bytes.Load()+w > t.maxBytes() {
			return false
		}
		t.bytes.Add(w)
		t.droppable.Add(1)
		if f.last == nil {
			f.last = map[string]int64{}
		}
	}
	f.last[key] = now
	return true
}

// filledSince reports whether key was filled at cutoff or later.
func (t *Tracker) filledSince(key string, cutoff int64) bool {
	t.filled.mu.Lock()
	defer t.filled.mu.Unlock()
	last, ok := t.filled.last[key]
	return ok && last >= cutoff
}

// sweepFilled appends to touched the keys filled at since or later, and forgets those filled
// before cold.
func (t *Tracker) sweepFilled(touched []string, since, cold int64) []string {
	f := &t.filled
	f.mu.Lock()
	defer f.mu.Unlock()
	for key, last := range f.last {
		switch {
		case last >= since:
			touched = append(touched, key)
		case last < cold:
			delete(f.last, key)
			t.bytes.Add(-filledWeight(key))
		}
	}
	if len(f.last) == 0 {
		f.last = nil // a map keeps its buckets after deletes: let a burst's go
	}
	return touched
}

// dropFilled forgets the fills remembered before second before: under pressure, the records of
// keys asked for again need the room more. A fill forgotten before the sweep shared it is not
// in the fleet's hot set (a starting instance does not load it; auto clears it).
func (t *Tracker) dropFilled(before int64) {
	f := &t.filled
	f.mu.Lock()
	defer f.mu.Unlock()
	for key, last := range f.last {
		if last < before {
			delete(f.last, key)
			t.bytes.Add(-filledWeight(key))
		}
	}
	if len(f.last) == 0 {
		f.last = nil
	}
}
