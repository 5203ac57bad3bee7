package upstream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// runBudget runs b.run until the test ends, and waits for it to return.
func runBudget(t *testing.T, b *budget) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run = %v, want nil", err)
		}
	})
}

func TestTheFleetCapWithoutRedisIsEnforcedPerInstance(t *testing.T) {
	b := newBudget(BudgetOptions{Local: 10, Fleet: 2, MaxWait: 10 * time.Second})
	var h holders
	for i, err := range acquireAll(20, &h, b) {
		if err != nil {
			t.Errorf("acquisition %d: %v", i, err)
		}
	}
	if p := h.peak.Load(); p > 2 {
		t.Errorf("%d slots held at once, want at most the fleet cap 2", p)
	}
	if st := b.stats(); st.FleetErrors != 0 {
		t.Errorf("fleet_errors = %d without Redis, want 0", st.FleetErrors)
	}
}

func testTheFleetCapHoldsAcrossInstances(t *testing.T, srv redistest.Topology) {
	var budgets []*budget
	for _, name := range []string{"a", "b", "c"} {
		b := newBudget(BudgetOptions{Local: 3, Fleet: 4, MaxWait: 10 * time.Second, Redis: client(t, srv), Instance: name})
		runBudget(t, b)
		budgets = append(budgets, b)
	}
	var h holders
	for i, err := range acquireAll(60, &h, budgets...) {
		if err != nil {
			t.Errorf("acquisition %d: %v", i, err)
		}
	}
	if p := h.peak.Load(); p > 4 {
		t.Errorf("%d slots held at once across the fleet, want at most 4", p)
	}
	var waits int64
	for _, b := range budgets {
		st := b.stats()
		waits += st.Waits
		if st.FleetErrors != 0 || st.InUse != 0 {
			t.Errorf("stats = %+v, want no fleet errors and nothing in use", st)
		}
	}
	if waits == 0 {
		t.Error("no acquisition waited: the test did not reach the fleet cap")
	}
	if n := slots(t, client(t, srv)); n != 0 {
		t.Errorf("%d fleet slots left in Redis after every release, want 0", n)
	}
}

func testAClientWaitsForTheFleetWhileBackgroundYields(t *testing.T, srv redistest.Topology) {
	a := newBudget(BudgetOptions{Fleet: 4, MaxWait: 10 * time.Second, Redis: client(t, srv), Instance: "a"})
	b := newBudget(BudgetOptions{Fleet: 4, MaxWait: 10 * time.Second, Redis: client(t, srv), Instance: "b"})
	var held []func()
	for range 3 {
		held = append(held, mustAcquire(t, a, false))
	}
	// One fleet slot is free, but it is the clients' reserve.
	if _, err := b.acquire(t.Context(), true); !errors.Is(err, ErrBudget) {
		t.Fatalf("background acquisition into the fleet's reserve = %v, want ErrBudget", err)
	}
	held = append(held, mustAcquire(t, b, false))
	if n := slots(t, client(t, srv)); n != 4 {
		t.Fatalf("%d fleet slots in Redis, want 4", n)
	}
	// The fleet is full: a client of b polls for it; background work must not take its turn.
	done := make(chan error, 1)
	go func() {
		r, err := b.acquire(context.Background(), false)
		if err == nil {
			r()
		}
		done <- err
	}()
	testenv.WaitFor(t, 5*time.Second, "the client to wait for the fleet", func() bool { return b.stats().Waits == 1 })
	if _, err := b.acquire(t.Context(), true); !errors.Is(err, ErrBudget) {
		t.Errorf("background acquisition while a client waits for the fleet = %v, want ErrBudget", err)
	}
	held[0]() // a's slot frees the fleet for b's client
	if err := <-done; err != nil {
		t.Errorf("the client waiting for the fleet: %v", err)
	}
	if st := b.stats(); st.Yielded != 2 || st.FleetErrors != 0 {
		t.Errorf("stats = %+v, want 2 yielded, no fleet errors", st)
	}
}

func testAForegroundAcquisitionGivesUpOnAFullFleetAfterMaxWait(t *testing.T, srv redistest.Topology) {
	const wait = 150 * time.Millisecond
	a := newBudget(BudgetOptions{Fleet: 1, Redis: client(t, srv), Instance: "a"})
	b := newBudget(BudgetOptions{Fleet: 1, MaxWait: wait, Redis: client(t, srv), Instance: "b"})
	defer mustAcquire(t, a, false)()
	start := time.Now()
	_, err := b.acquire(t.Context(), false)
	elapsed := time.Since(start)
	if !errors.Is(err, ErrBudget) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("acquire with the fleet full = %v, want ErrBudget", err)
	}
	if elapsed < wait || elapsed > 5*time.Second {
		t.Errorf("gave up after %v, want MaxWait %v (and not much more)", elapsed, wait)
	}
	if st := b.stats(); st.Waits != 1 || st.Timeouts != 1 || st.InUse != 0 {
		t.Errorf("stats = %+v, want 1 wait, 1 timeout, nothing in use", st)
	}
}

func testACrashedInstancesSlotsExpireAfterOneLease(t *testing.T, srv redistest.Topology) {
	const lease = 300 * time.Millisecond
	crashed := newBudget(BudgetOptions{Fleet: 2, Redis: client(t, srv), Instance: "crashed"})
	crashed.lease = lease
	mustAcquire(t, crashed, false) // never released, never renewed: run is not running
	mustAcquire(t, crashed, false)
	other := newBudget(BudgetOptions{Fleet: 2, Redis: client(t, srv), Instance: "other"})
	other.lease = lease
	if _, err := other.acquire(t.Context(), false); !errors.Is(err, ErrBudget) {
		t.Fatalf("acquire with the fleet held by the crashed instance = %v, want ErrBudget", err)
	}
	taken := 0
	testenv.WaitFor(t, 5*time.Second, "the crashed instance's leases to expire", func() bool {
		if _, err := other.acquire(t.Context(), false); err == nil {
			taken++
		}
		return taken == 2
	})
}

func testARenewedSlotOutlivesItsLease(t *testing.T, srv redistest.Topology) {
	const lease = 300 * time.Millisecond
	holder := newBudget(BudgetOptions{Fleet: 1, Redis: client(t, srv), Instance: "holder"})
	holder.lease = lease
	runBudget(t, holder)
	release := mustAcquire(t, holder, false)
	other := newBudget(BudgetOptions{Fleet: 1, Redis: client(t, srv), Instance: "other"})
	other.lease = lease
	for end := time.Now().Add(4 * lease); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if r, err := other.acquire(t.Context(), false); err == nil {
			r()
			t.Fatal("another instance took the slot held and renewed by the holder")
		}
	}
	release()
	testenv.WaitFor(t, 5*time.Second, "the released slot", func() bool {
		r, err := other.acquire(t.Context(), false)
		if err == nil {
			r()
		}
		return err == nil
	})
	if st := holder.stats(); st.FleetErrors != 0 {
		t.Errorf("holder's fleet_errors = %d, want 0", st.FleetErrors)
	}
}

func testRenewalNeverWritesBackARemovedSlot(t *testing.T, srv redistest.Topology) {
	// A renewal overtaken by the release of one of its members must not bring the member back
	// for a lease; the same rule leaves a flushed semaphore empty.
	const lease = 150 * time.Millisecond
	rdb := client(t, srv)
	b := newBudget(BudgetOptions{Fleet: 2, Redis: rdb})
	b.lease = lease
	runBudget(t, b)
	defer mustAcquire(t, b, false)()
	if err := rdb.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(4 * lease); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if n := slots(t, rdb); n != 0 {
			t.Fatalf("%d fleet slots in Redis after the flush: renewal wrote a removed member back", n)
		}
	}
	if st := b.stats(); st.FleetErrors != 0 {
		t.Errorf("fleet_errors = %d, want 0", st.FleetErrors)
	}
}

func testRunRemovesTheInstancesSlotsWhenItEnds(t *testing.T, srv redistest.Topology) {
	b := newBudget(BudgetOptions{Fleet: 3, Redis: client(t, srv)})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.run(ctx) }()
	mustAcquire(t, b, false)
	mustAcquire(t, b, true)
	if n := slots(t, client(t, srv)); n != 2 {
		t.Fatalf("%d fleet slots in Redis, want 2", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run = %v, want nil", err)
	}
	if n := slots(t, client(t, srv)); n != 0 {
		t.Errorf("%d fleet slots left in Redis after run ended, want 0", n)
	}
	ttl, err := client(t, srv).PTTL(t.Context(), budgetKey).Result()
	if err != nil || ttl > budgetLease {
		t.Errorf("PTTL %s = %v, %v; want at most one lease", budgetKey, ttl, err)
	}
}

func testTheSemaphoreKeyExpiresWithItsLastLease(t *testing.T, srv redistest.Topology) {
	b := newBudget(BudgetOptions{Fleet: 3, Redis: client(t, srv)})
	defer mustAcquire(t, b, false)()
	ttl, err := client(t, srv).PTTL(t.Context(), budgetKey).Result()
	if err != nil || ttl <= 0 || ttl > budgetLease {
		t.Errorf("PTTL %s = %v, %v; want at most one lease", budgetKey, ttl, err)
	}
}

func TestWithRedisDownTheFleetCapIsEnforcedLocally(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	b := newBudget(BudgetOptions{Fleet: 2, MaxWait: 100 * time.Millisecond, Redis: rdb})
	b.retry = 100 * time.Millisecond
	runBudget(t, b)
	srv.Stop()

	start := time.Now()
	r1 := mustAcquire(t, b, false)
	r2 := mustAcquire(t, b, false)
	if _, err := b.acquire(t.Context(), false); !errors.Is(err, ErrBudget) {
		t.Errorf("third acquisition with Redis down and a fleet cap of 2 = %v, want ErrBudget", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("acquisitions with Redis down took %v, want about one Redis deadline", d)
	}
	if st := b.stats(); st.FleetErrors == 0 || st.InUse != 2 {
		t.Errorf("stats = %+v, want fleet errors and 2 in use", st)
	}
	r1()
	r2()

	srv.Restart()
	testenv.WaitFor(t, 5*time.Second, "a fleet slot in Redis again", func() bool {
		r := mustAcquire(t, b, false)
		defer r()
		n, err := rdb.ZCard(t.Context(), budgetKey).Result()
		return err == nil && n == 1
	})
}

func TestAStalledRedisLeavesNoSlotBehind(t *testing.T) {
	srv := redistest.Start(t)
	rdb := client(t, srv)
	b := newBudget(BudgetOptions{Fleet: 2, MaxWait: time.Second, Redis: rdb})
	runBudget(t, b)
	mustAcquire(t, b, false)() // learns the server's clock
	srv.Freeze()
	start := time.Now()
	release := mustAcquire(t, b, false) // its script reaches Redis, which runs it on thawing
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("acquire with Redis stalled took %v, want about one Redis deadline", d)
	}
	release()
	srv.Thaw()
	// The default lease is 10 s: a member written by the stalled script would outlive this wait.
	testenv.WaitFor(t, 3*time.Second, "no fleet slot left in Redis", func() bool {
		n, err := rdb.ZCard(t.Context(), budgetKey).Result()
		return err == nil && n == 0
	})
	if st := b.stats(); st.FleetErrors == 0 || st.InUse != 0 {
		t.Errorf("stats = %+v, want fleet errors and nothing in use", st)
	}
}

// slots is the number of members of the fleet semaphore in Redis.
func slots(t *testing.T, rdb redis.UniversalClient) int64 {
	t.Helper()
	n, err := rdb.ZCard(context.Background(), budgetKey).Result()
	if err != nil {
		t.Fatalf("ZCARD %s: %v", budgetKey, err)
	}
	return n
}
