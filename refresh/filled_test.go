package refresh

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/swrproxy/swrproxy/tiers"
)

// TestAKeyFilledOnceIsHotWithoutARecord: the request that fills a key makes it hot for the
// window (invalidation mode auto refreshes it, the fleet's hot set lists it) at a few bytes,
// without a record; once the window passes it is cold and costs nothing.
func TestAKeyFilledOnceIsHotWithoutARecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &hotStore{}
		tr := &Tracker{Window: 8 * time.Second, Pool: newTestPool(1, 10, time.Minute), Store: store, Log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go tr.Run(ctx)
		e := &tiers.Entry{Key: "/once", Stored: time.Now(), Fresh: time.Hour}
		tr.Filled(e.Key, e)
		if n, b := tr.Size(); n != 0 || b != filledWeight("/once") {
			t.Errorf("after one fill: %d records, %d bytes; want none and %d", n, b, filledWeight("/once"))
		}
		if !tr.Hot("/once") {
			t.Error("a key filled just now is not hot")
		}
		time.Sleep(3 * time.Second) // a share (every Window/4 = 2 s)
		synctest.Wait()
		if !store.marked("/once") {
			t.Errorf("the fleet's hot set was told %q, want /once", store.keys)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if tr.Hot("/once") {
			t.Error("a key filled more than a window ago is still hot")
		}
		if n, b := tr.Size(); n != 0 || b != 0 {
			t.Errorf("after the window: %d records, %d bytes; want none", n, b)
		}
	})
}

// TestAFloodOfFillsLeavesRoomForKeysAskedForAgain: fills of distinct keys take the tracker's
// room; under pressure the sweep forgets them, so a key asked for again gets its record.
func TestAFloodOfFillsLeavesRoomForKeysAskedForAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const max = 64 << 10
		tr := &Tracker{Window: time.Minute, MaxBytes: max, Pool: newTestPool(1, 10, time.Minute), Store: &hotStore{}, Log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go tr.Run(ctx)
		for i := range 10_000 {
			key := "/flood/" + strconv.Itoa(i)
			tr.Filled(key, &tiers.Entry{Key: key, Stored: time.Now(), Fresh: time.Hour})
		}
		if _, b := tr.Size(); b > max {
			t.Errorf("tracker holds %d bytes, want at most %d", b, max)
		}
		hot := &tiers.Entry{Key: "/hot", Stored: time.Now(), Fresh: time.Hour}
		tr.TouchAt(hot.Key, nil, hot, time.Now()) // no room yet
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		tr.TouchAt(hot.Key, nil, hot, time.Now())
		if n, _ := tr.Size(); n != 1 {
			t.Errorf("records after the sweep = %d, want 1 (the key asked for again)", n)
		}
	})
}

// hotStore records what the tracker shares with the fleet's hot set; the tracker's sweep calls
// nothing else of a Store.
type hotStore struct {
	Store
	mu   sync.Mutex
	keys []string
}

func (s *hotStore) MarkHot(_ context.Context, keys []string, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, keys...)
	return nil
}

func (s *hotStore) marked(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.keys, key)
}

// TestAKeyPromotedFromL2IsHotWithoutARecordUntilAskedForAgain: an instance of a fleet serves
// from L2 the keys another one filled; the first request for one on this instance is no more
// demand than a fill (a record for each cost about 400 bytes per promoted object): the key is
// hot at a few bytes, and gets its record, with its demand, when a client asks for it again. A
// key this instance tracks already counts the promotion as demand (it was evicted, or refreshed
// by another instance).
func TestAKeyPromotedFromL2IsHotWithoutARecordUntilAskedForAgain(t *testing.T) {
	tr := &Tracker{Window: time.Minute, Pool: newTestPool(1, 10, time.Minute), Store: &hotStore{}, Log: slog.New(slog.DiscardHandler)}
	e := &tiers.Entry{Key: "/promoted", Stored: time.Now(), Fresh: time.Hour}
	tr.PromotedAt(e.Key, e, time.Now())
	if n, b := tr.Size(); n != 0 || b != filledWeight("/promoted") {
		t.Errorf("after a promotion: %d records, %d bytes; want none and %d", n, b, filledWeight("/promoted"))
	}
	if !tr.Hot("/promoted") {
		t.Error("a key promoted just now is not hot")
	}
	tr.TouchAt(e.Key, nil, e, time.Now()) // asked for again, from L1
	if n, _ := tr.Size(); n != 1 {
		t.Fatalf("after a second request: %d records, want 1", n)
	}
	// Asked for again from L2 (L1 keeps a copy for SWR_L1_MAX_TTL at most): a record too.
	other := &tiers.Entry{Key: "/from-l2", Stored: time.Now(), Fresh: time.Hour}
	tr.PromotedAt(other.Key, other, time.Now())
	tr.PromotedAt(other.Key, other, time.Now().Add(31*time.Second))
	if _, ok := tr.keys().Load(other.Key); !ok {
		t.Error("a key promoted twice within the window has no record: it is never refreshed ahead")
	}
	h, _ := tr.keys().Load(e.Key)
	again := &tiers.Entry{Key: e.Key, Stored: e.Stored.Add(time.Second), Fresh: time.Hour}
	tr.PromotedAt(again.Key, again, time.Now()) // a newer copy from L2, for a tracked key: demand
	if got := h.hits.Load(); got != 2 {
		t.Errorf("%d requests counted, want 2 (the promotion of a tracked key is demand)", got)
	}
}
