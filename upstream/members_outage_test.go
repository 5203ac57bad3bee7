package upstream

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

func TestWithRedisGoneThePoolIsKeptAndChangesAreRefused(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 3)
	a := instance(t, srv, "a", bs[0].url, bs[1].url)
	b := instance(t, srv, "b", bs[2].url)
	a.Sync(t.Context())
	b.Sync(t.Context())
	runPool(t, a)
	runPool(t, b)
	if _, err := a.Add(t.Context(), bs[2].url); err != nil {
		t.Fatal(err)
	}
	b.Sync(t.Context())
	want := sorted(bs[0].url, bs[1].url, bs[2].url)
	if !slices.Equal(ids(b), want) {
		t.Fatalf("b's pool = %v, want %v", ids(b), want)
	}

	srv.Stop()
	start := time.Now()
	if _, err := a.Add(t.Context(), "http://127.0.0.1:1"); !errors.Is(err, ErrPoolStore) {
		t.Errorf("Add with Redis gone: %v, want ErrPoolStore", err)
	}
	if _, err := b.Remove(t.Context(), bs[0].url); !errors.Is(err, ErrPoolStore) {
		t.Errorf("Remove with Redis gone: %v, want ErrPoolStore", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("refusing two changes took %v, want each within the pool's Redis timeout", elapsed)
	}
	a.Sync(t.Context())
	b.Sync(t.Context())
	for _, c := range []*Client{a, b} {
		if got := ids(c); !slices.Equal(got, want) {
			t.Errorf("instance %s's pool = %v with Redis gone, want the last one %v", c.Instance(), got, want)
		}
		for range 3 {
			mustFetch(t, c, "", "/x")
		}
	}

	// Redis comes back empty (no persistence): the next load seeds it again with the pool of
	// whichever instance loads first (a's Sync, or a watch that reconnected), which is the
	// fleet's last one, the backend added through the API included; the fleet follows.
	srv.Restart()
	a.Sync(t.Context())
	b.Sync(t.Context())
	got := storedURLs(t, rdb)
	if !slices.Equal(got, want) {
		t.Fatalf("Redis after the restart = %v, want the fleet's last pool %v", got, want)
	}
	for _, c := range []*Client{a, b} {
		if pool := ids(c); !slices.Equal(pool, got) {
			t.Errorf("instance %s's pool = %v, want the fleet's %v", c.Instance(), pool, got)
		}
	}
}

func TestAfterRedisRestartsEmptyTheRunningFleetSeedsItAgainAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	bs := startBackends(t, 3)
	a := instance(t, srv, "a", bs[0].url, bs[1].url)
	b := instance(t, srv, "b", bs[0].url, bs[1].url)
	a.Sync(t.Context())
	b.Sync(t.Context())
	if _, err := a.Add(t.Context(), bs[2].url); err != nil {
		t.Fatal(err)
	}
	b.Sync(t.Context())
	runPool(t, a)
	runPool(t, b)
	subscribed(t, rdb, 2)

	srv.Stop()
	srv.Restart() // empty: no persistence
	// No Sync: the instances' watches reconnect and load, and the first load seeds the pool
	// that instance holds: the backend added through the API survives Redis's data.
	seeded := sorted(bs[0].url, bs[1].url, bs[2].url)
	testenv.WaitFor(t, 2*time.Second, "Redis seeded again and both pools following it", func() bool {
		n, err := rdb.HLen(context.Background(), poolKey).Result()
		return err == nil && n == 3 && slices.Equal(ids(a), seeded) && slices.Equal(ids(b), seeded)
	})
	if got := storedURLs(t, rdb); !slices.Equal(got, seeded) {
		t.Errorf("Redis = %v, want %v", got, seeded)
	}
	subscribed(t, rdb, 2)
	if _, err := b.Remove(t.Context(), bs[2].url); err != nil {
		t.Fatalf("Remove after the restart: %v", err)
	}
	testenv.WaitFor(t, time.Second, "a to see the backend removed through b after the restart", func() bool {
		return !slices.Contains(ids(a), bs[2].url)
	})
}
