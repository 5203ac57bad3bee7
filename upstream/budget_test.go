package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
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

// client returns a client of srv configured as main's newRedis does: short timeouts, no retries,
// and context deadlines honoured on the socket (ContextTimeoutEnabled), which the budget relies on.
func client(t *testing.T, srv *redistest.Server) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{
		Addr: srv.Addr(), DialTimeout: 500 * time.Millisecond, ReadTimeout: 250 * time.Millisecond,
		WriteTimeout: 250 * time.Millisecond, PoolTimeout: 300 * time.Millisecond,
		MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
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

// mustAcquire acquires a slot of b, failing the test on error.
func mustAcquire(t *testing.T, b *budget, background bool) func() {
	t.Helper()
	release, err := b.acquire(t.Context(), background)
	if err != nil {
		t.Fatalf("acquire(background=%v) = %v", background, err)
	}
	return release
}

// holders counts concurrently held slots and remembers the most ever held at once.
type holders struct{ now, peak atomic.Int64 }

func (h *holders) hold(d time.Duration) {
	n := h.now.Add(1)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	time.Sleep(d) // overlap the holders; the cap, not the timing, bounds the peak
	h.now.Add(-1)
}

// acquireAll runs n acquisitions spread over budgets, each holding its slot for a moment, and
// returns the errors.
func acquireAll(n int, h *holders, budgets ...*budget) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			release, err := budgets[i%len(budgets)].acquire(context.Background(), false)
			if err != nil {
				errs[i] = err
				return
			}
			h.hold(2 * time.Millisecond)
			release()
		})
	}
	wg.Wait()
	return errs
}

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

func TestTheFleetCapHoldsAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
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

func TestAClientWaitsForTheFleetWhileBackgroundYields(t *testing.T) {
	srv := redistest.Start(t)
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

func TestAForegroundAcquisitionGivesUpOnAFullFleetAfterMaxWait(t *testing.T) {
	const wait = 150 * time.Millisecond
	srv := redistest.Start(t)
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

func TestACrashedInstancesSlotsExpireAfterOneLease(t *testing.T) {
	const lease = 300 * time.Millisecond
	srv := redistest.Start(t)
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

func TestARenewedSlotOutlivesItsLease(t *testing.T) {
	const lease = 300 * time.Millisecond
	srv := redistest.Start(t)
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

func TestRenewalNeverWritesBackARemovedSlot(t *testing.T) {
	// A renewal overtaken by the release of one of its members must not bring the member back
	// for a lease; the same rule leaves a flushed semaphore empty.
	const lease = 150 * time.Millisecond
	srv := redistest.Start(t)
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

func TestRunRemovesTheInstancesSlotsWhenItEnds(t *testing.T) {
	srv := redistest.Start(t)
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

func TestTheSemaphoreKeyExpiresWithItsLastLease(t *testing.T) {
	srv := redistest.Start(t)
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
