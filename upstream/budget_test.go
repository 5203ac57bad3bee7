package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

func TestTheLocalCapBoundsTheSlotsHeldAtOnce(t *testing.T) {
	b := newBudget(BudgetOptions{Local: 3, MaxWait: 10 * time.Second})
	var h holders
	for i, err := range acquireAll(40, &h, b) {
		if err != nil {
			t.Errorf("acquisition %d: %v", i, err)
		}
	}
	if p := h.peak.Load(); p > 3 {
		t.Errorf("%d slots held at once, want at most 3", p)
	}
	st := b.stats()
	if st.InUse != 0 || st.Waits == 0 || st.Timeouts != 0 {
		t.Errorf("stats = %+v, want in_use 0, some waits, no timeouts", st)
	}
}

func TestLocalWaitersAreServedOldestFirst(t *testing.T) {
	b := newBudget(BudgetOptions{Local: 1, MaxWait: 10 * time.Second})
	release := mustAcquire(t, b, false)
	got := make(chan string, 3)
	var wg sync.WaitGroup
	for i, name := range []string{"first", "second", "third"} {
		wg.Go(func() {
			r, err := b.acquire(context.Background(), false)
			if err != nil {
				got <- name + ": " + err.Error()
				return
			}
			got <- name
			r()
		})
		testenv.WaitFor(t, 5*time.Second, name+" waiting", func() bool { return b.stats().Waits == int64(i+1) })
	}
	release()
	wg.Wait()
	close(got)
	var order []string
	for s := range got {
		order = append(order, s)
	}
	if s := strings.Join(order, ","); s != "first,second,third" {
		t.Errorf("served %s, want first,second,third", s)
	}
}

func TestAForegroundAcquisitionGivesUpAfterMaxWait(t *testing.T) {
	const wait = 100 * time.Millisecond
	b := newBudget(BudgetOptions{Local: 1, MaxWait: wait})
	defer mustAcquire(t, b, false)()
	start := time.Now()
	release, err := b.acquire(t.Context(), false)
	elapsed := time.Since(start)
	if release != nil || !errors.Is(err, ErrBudget) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("acquire with the cap full = %v, want an error wrapping ErrBudget and ErrUnavailable", err)
	}
	if elapsed < wait || elapsed > 5*time.Second {
		t.Errorf("gave up after %v, want MaxWait %v (and not much more)", elapsed, wait)
	}
	if st := b.stats(); st.Waits != 1 || st.Timeouts != 1 || st.InUse != 1 {
		t.Errorf("stats = %+v, want 1 wait, 1 timeout, 1 in use", st)
	}
}

func TestCancellingTheContextEndsTheWait(t *testing.T) {
	b := newBudget(BudgetOptions{Local: 1, MaxWait: time.Minute})
	release := mustAcquire(t, b, false)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		r, err := b.acquire(ctx, false)
		if r != nil {
			r()
		}
		done <- err
	}()
	testenv.WaitFor(t, 5*time.Second, "the acquisition to wait", func() bool { return b.stats().Waits == 1 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled acquire = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acquire went on waiting after its context was cancelled")
	}
	// The cancelled waiter left the queue: the released slot goes to the next one at once.
	release()
	b.maxWait = 0
	mustAcquire(t, b, false)()
	if _, err := b.acquire(ctx, false); !errors.Is(err, context.Canceled) {
		t.Errorf("acquire with a cancelled context = %v, want context.Canceled", err)
	}
	if st := b.stats(); st.Timeouts != 0 || st.InUse != 0 {
		t.Errorf("stats = %+v, want no timeouts and nothing in use", st)
	}
}

func TestBackgroundAcquisitionsKeepAReserveForClients(t *testing.T) {
	tests := []struct{ size, background int }{{1, 1}, {2, 1}, {4, 3}, {8, 6}, {12, 9}}
	for _, tt := range tests {
		b := newBudget(BudgetOptions{Local: tt.size}) // no waiting: every acquisition answers at once
		for range tt.background {
			mustAcquire(t, b, true)
		}
		start := time.Now()
		if _, err := b.acquire(t.Context(), true); !errors.Is(err, ErrBudget) {
			t.Errorf("cap %d: background acquisition %d = %v, want ErrBudget", tt.size, tt.background+1, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("cap %d: the refused background acquisition took %v, want at once", tt.size, d)
		}
		for range tt.size - tt.background {
			mustAcquire(t, b, false)
		}
		if st := b.stats(); st.Yielded != 1 || st.InUse != int64(tt.size) || st.Waits != 0 {
			t.Errorf("cap %d: stats = %+v, want 1 yielded, %d in use, no waits", tt.size, st, tt.size)
		}
	}
}

func TestABackgroundAcquisitionNeverWaitsBehindAClient(t *testing.T) {
	b := newBudget(BudgetOptions{Local: 4, MaxWait: time.Minute})
	var releases []func()
	for range 4 {
		releases = append(releases, mustAcquire(t, b, false))
	}
	done := make(chan error, 1)
	go func() {
		r, err := b.acquire(context.Background(), false)
		if err == nil {
			r()
		}
		done <- err
	}()
	testenv.WaitFor(t, 5*time.Second, "the client to wait", func() bool { return b.stats().Waits == 1 })
	start := time.Now()
	if _, err := b.acquire(t.Context(), true); !errors.Is(err, ErrBudget) {
		t.Errorf("background acquisition behind a waiting client = %v, want ErrBudget", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the background acquisition took %v, want at once", d)
	}
	releases[0]() // goes to the waiting client
	if err := <-done; err != nil {
		t.Errorf("the waiting client: %v", err)
	}
	if st := b.stats(); st.Yielded != 1 || st.Timeouts != 0 {
		t.Errorf("stats = %+v, want 1 yielded, no timeouts", st)
	}
}

func TestReleasingTwiceReleasesOnce(t *testing.T) {
	b := newBudget(BudgetOptions{Local: 1})
	first := mustAcquire(t, b, false)
	first()
	first()
	second := mustAcquire(t, b, false) // may reuse first's slot state
	first()
	if r, err := b.acquire(t.Context(), false); !errors.Is(err, ErrBudget) {
		if r != nil {
			r()
		}
		t.Fatalf("acquire while the only slot is held = %v, want ErrBudget: a stale release freed it", err)
	}
	if st := b.stats(); st.InUse != 1 {
		t.Errorf("in_use = %d, want 1", st.InUse)
	}
	second()
	second()
	mustAcquire(t, b, false)()
	if st := b.stats(); st.InUse != 0 || st.Timeouts != 1 {
		t.Errorf("stats = %+v, want in_use 0, 1 timeout", st)
	}
}

func TestAnUnlimitedBudgetNeverWaitsAndCostsOneAllocation(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // nothing listens: never asked
	t.Cleanup(func() { rdb.Close() })
	b := newBudget(BudgetOptions{Redis: rdb})
	var releases []func()
	for range 1000 {
		releases = append(releases, mustAcquire(t, b, true))
	}
	if st := b.stats(); st.InUse != 1000 || st.Waits != 0 || st.FleetErrors != 0 {
		t.Errorf("stats = %+v, want 1000 in use, no waits, no Redis", st)
	}
	for _, r := range releases {
		r()
		r()
	}
	if n := b.stats().InUse; n != 0 {
		t.Errorf("in_use = %d after every release, want 0", n)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		r, _ := b.acquire(context.Background(), false)
		r()
	})
	if allocs > 1 {
		t.Errorf("an unlimited acquire and release allocates %v times, want at most 1 (the release)", allocs)
	}
}

func TestBudgetStatsAreSnakeCaseJSON(t *testing.T) {
	b, err := json.Marshal(BudgetStats{InUse: 1, Waits: 2, Timeouts: 3, Yielded: 4, FleetErrors: 5})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"in_use":1,"waits":2,"timeouts":3,"yielded":4,"fleet_errors":5}`
	if string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
}

func BenchmarkAcquireUnlimited(b *testing.B) {
	bg := newBudget(BudgetOptions{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		release, _ := bg.acquire(ctx, false)
		release()
	}
}

func BenchmarkAcquireLocal(b *testing.B) {
	bg := newBudget(BudgetOptions{Local: 64, MaxWait: time.Second})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			release, err := bg.acquire(ctx, false)
			if err != nil {
				b.Error(err)
				return
			}
			release()
		}
	})
}
