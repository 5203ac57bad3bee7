package upstream

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/testenv"
)

// check runs one active health check of the backend id, as its loop would.
func check(t *testing.T, c *Client, id string) {
	t.Helper()
	b := c.member(id)
	if b == nil {
		t.Fatalf("no backend %s", id)
	}
	c.checkOnce(t.Context(), b)
}

func TestABackendIsMarkedDownAfterFallFailedChecksAndUpAfterRisePasses(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{Health: HealthOptions{Fall: 3, Rise: 2}}, urls(bs...)...)
	id := bs[0].url
	joined := server(t, c, id).Since

	bs[0].sick.Store(true)
	sickAt := time.Now()
	for i := 1; i < 3; i++ {
		check(t, c, id)
		s := server(t, c, id)
		if s.State != "up" || s.Failures != i || !s.Since.Equal(joined) {
			t.Fatalf("after %d failed checks: %+v, want still up since it joined, %d failures", i, s, i)
		}
	}
	check(t, c, id)
	s := server(t, c, id)
	if s.State != "down" || s.Failures != 3 || s.Since.Before(sickAt) || time.Since(s.Since) > time.Minute {
		t.Fatalf("after 3 failed checks: %+v, want down since the third, 3 failures", s)
	}
	if s.LastCheck == nil || s.LastCheck.Status != http.StatusServiceUnavailable || !strings.Contains(s.LastCheck.Error, "503") ||
		s.LastCheck.At.Before(sickAt) || s.CheckMillis <= 0 {
		t.Errorf("last check = %+v (%v ms), want the 503, with its time", s.LastCheck, s.CheckMillis)
	}
	if c.Healthy() != 1 || c.Stats().Up != 1 {
		t.Errorf("Healthy = %d, want 1", c.Healthy())
	}
	downSince := s.Since

	// Rise: passes in a row; a failure between them starts the count again.
	bs[0].sick.Store(false)
	check(t, c, id)
	bs[0].sick.Store(true)
	check(t, c, id)
	bs[0].sick.Store(false)
	check(t, c, id)
	if s := server(t, c, id); s.State != "down" || s.Failures != 0 || !s.Since.Equal(downSince) {
		t.Fatalf("after pass, fail, pass: %+v, want still down (Rise is 2 in a row)", s)
	}
	check(t, c, id)
	s = server(t, c, id)
	if s.State != "up" || s.Failures != 0 || !s.Since.After(downSince) || s.LastCheck.Status != 200 || s.LastCheck.Error != "" {
		t.Fatalf("after 2 passes in a row: %+v, want up since now", s)
	}

	// Fall: failures in a row; a pass between them starts the count again.
	for _, sick := range []bool{true, true, false, true, true} {
		bs[0].sick.Store(sick)
		check(t, c, id)
	}
	if s := server(t, c, id); s.State != "up" || s.Failures != 2 {
		t.Errorf("after fail, fail, pass, fail, fail: %+v, want up with 2 failures", s)
	}
}

func TestAFailedCheckWithoutAnAnswerSaysWhy(t *testing.T) {
	stop := make(chan struct{})
	hang := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(stop) })
	bad := refusing(t)
	c := newPool(t, Options{Health: HealthOptions{Timeout: 100 * time.Millisecond}}, bad, hang.URL)

	check(t, c, bad)
	s := server(t, c, bad)
	if s.State != "down" || s.LastCheck == nil || s.LastCheck.Status != 0 || !strings.Contains(s.LastCheck.Error, "refused") {
		t.Errorf("refusing backend after a check: %+v %+v, want down, the refusal as the error", s, s.LastCheck)
	}
	start := time.Now()
	check(t, c, normalised(t, hang.URL))
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("a check of a backend that never answers took %v, want about its 100ms timeout", elapsed)
	}
	s = server(t, c, normalised(t, hang.URL))
	if s.State != "down" || s.LastCheck == nil || s.LastCheck.Error == "" {
		t.Errorf("hanging backend after a check: %+v %+v, want down with the timeout as the error", s, s.LastCheck)
	}
}

func TestChecksAskTheHealthPathUnderTheBasePathWithTheConfiguredHost(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Clone(context.Background()))
		mu.Unlock()
	})
	c := newPool(t, Options{Host: "site.example", Health: HealthOptions{Path: "/ping?deep=1"}}, srv.URL+"/base/")
	check(t, c, normalised(t, srv.URL)+"/base")
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].RequestURI != "/base/ping?deep=1" || got[0].Host != "site.example" ||
		got[0].Method != http.MethodGet || got[0].UserAgent() != "swrproxy-health-check" {
		t.Fatalf("checks seen: %v", got)
	}
}

func TestTheChecksRunWhileRunRuns(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{Health: HealthOptions{Interval: 20 * time.Millisecond, Fall: 2, Rise: 2}}, urls(bs...)...)
	runPool(t, c)
	testenv.WaitFor(t, 2*time.Second, "checks of both backends", func() bool {
		return bs[0].checks.Load() > 0 && bs[1].checks.Load() > 0
	})
	bs[0].sick.Store(true)
	testenv.WaitFor(t, 2*time.Second, "the sick backend down", func() bool {
		return server(t, c, bs[0].url).State == "down"
	})
	for range 10 {
		if got := mustFetch(t, c, "", "/x"); got != bs[1].name {
			t.Fatalf("a request went to %s, down", got)
		}
	}
	bs[0].sick.Store(false)
	testenv.WaitFor(t, 2*time.Second, "the healed backend up", func() bool {
		return server(t, c, bs[0].url).State == "up"
	})

	// A backend added while Run runs is checked too; one removed is not anymore.
	extra := startBackend(t, "x")
	if _, err := c.Add(t.Context(), extra.url); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Second, "a check of the added backend", func() bool { return extra.checks.Load() > 0 })
	if _, err := c.Remove(t.Context(), extra.url); err != nil {
		t.Fatal(err)
	}
	// A check sent before the removal may still land: count from a few intervals later.
	m := bs[1].checks.Load()
	testenv.WaitFor(t, 2*time.Second, "more checks of the others", func() bool { return bs[1].checks.Load() > m+3 })
	n := extra.checks.Load()
	m = bs[1].checks.Load()
	testenv.WaitFor(t, 2*time.Second, "more checks of the others", func() bool { return bs[1].checks.Load() > m+5 })
	if m := extra.checks.Load(); m != n {
		t.Errorf("the removed backend got %d more checks", m-n)
	}
}

func TestRefusedConnectionsOnTrafficTakeABackendDown(t *testing.T) {
	good := startBackend(t, "good")
	bad := refusing(t)
	c := newPool(t, Options{Health: HealthOptions{Fall: 2}}, good.url, bad)
	start := time.Now()
	for range 10 {
		if got := mustFetch(t, c, "", "/x"); got != "good" {
			t.Fatalf("answered by %q", got)
		}
	}
	s := server(t, c, bad)
	if s.State != "down" || s.Failures != 2 || s.Failed != 2 || s.Since.Before(start) {
		t.Errorf("refusing backend: %+v, want down after 2 refusals", s)
	}
	if st := c.Stats(); st.Retries != 2 || st.Success != 10 {
		t.Errorf("Stats = %+v, want 2 retries (then it was down) and 10 successes", st)
	}
}

func TestAnAnswerEndsARunOfPassiveFailures(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 2}}, urls(bs...)...)
	k := keyOn(t, c, bs[0].url)
	drop := "/drop?on=" + bs[0].name
	for range 3 {
		if got := mustFetch(t, c, k, drop); got != bs[1].name { // dropped by a, retried on b
			t.Fatalf("GET %s answered by %q, want %s", drop, got, bs[1].name)
		}
		if got := mustFetch(t, c, k, "/x"); got != bs[0].name {
			t.Fatalf("GET /x answered by %q, want %s", got, bs[0].name)
		}
	}
	// Three failures, never two in a row.
	if s := server(t, c, bs[0].url); s.State != "up" || s.Failures != 0 || s.Failed != 3 {
		t.Errorf("after fail, answer ×3: %+v, want up, no failure in a row, 3 failed", s)
	}
}

func TestACallerGivingUpIsNoFailureOfTheBackend(t *testing.T) {
	stop := make(chan struct{})
	hang := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(stop) })
	other := startBackend(t, "o")
	id := normalised(t, hang.URL)
	c := newPool(t, Options{Balance: BalanceKeyHash, Timeout: 150 * time.Millisecond, Health: HealthOptions{Fall: 1}}, id, other.url)
	k := keyOn(t, c, id)

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.Do(ctx, &Request{Method: http.MethodGet, URI: "/x", Key: k}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do cancelled by its caller = %v, want context.Canceled", err)
	}
	if s := server(t, c, id); s.State != "up" || s.Failures != 0 {
		t.Errorf("after the caller gave up: %+v, want up, no failure", s)
	}
	if n := other.hits.Load(); n != 0 {
		t.Errorf("a cancelled request was retried: %d hits on the other backend", n)
	}
	// The backend's own silence past the timeout: the GET goes on to the other. It is not a
	// passive failure either (a slow URL would let a client take backends down): a backend that
	// hangs is the checks' to find.
	if got := mustFetch(t, c, k, "/x"); got != other.name {
		t.Errorf("answered by %q after a timeout, want %s", got, other.name)
	}
	if s := server(t, c, id); s.State != "up" || s.Failures != 0 || s.Failed != 2 {
		t.Errorf("after a response header timeout: %+v, want up, no failure in a row, 2 failed exchanges", s)
	}
}

func TestPassiveFailuresNeverTakeDownTheLastBackendUp(t *testing.T) {
	a, b := refusing(t), refusing(t)
	c := newPool(t, Options{Health: HealthOptions{Fall: 1}}, a, b)
	for i := range 5 {
		_, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x"})
		if err == nil || errors.Is(err, ErrUnavailable) {
			t.Fatalf("GET #%d = %v, want a dial error: one backend stays up", i, err)
		}
	}
	if c.Healthy() != 1 {
		t.Fatalf("Healthy = %d, want 1: traffic alone never takes down the last backend up", c.Healthy())
	}
	last := c.backends()[0]
	if !last.up.Load() {
		last = c.backends()[1]
	}
	if s := server(t, c, last.id); s.Failures < 5 {
		t.Errorf("the last backend up: %+v, want its failures counted all the same", s)
	}
	// Its checks can.
	check(t, c, last.id)
	if _, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x"}); !errors.Is(err, ErrAllDown) {
		t.Errorf("after a failed check of the last backend: %v, want ErrAllDown", err)
	}
}

// Two backends failing on traffic at the same moment must not take each other's count of the
// backends up as a licence: one of them stays up.
func TestConcurrentPassiveFailuresLeaveOneBackendUp(t *testing.T) {
	c := newPool(t, Options{Health: HealthOptions{Fall: 1}}, "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
	set := c.backends()
	for i := range 30000 {
		for _, b := range set {
			b.mu.Lock()
			b.fails, b.trafficFails = 0, 0
			b.up.Store(true)
			b.mu.Unlock()
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, b := range set {
			wg.Go(func() {
				<-start
				c.failure(b, time.Now(), true)
			})
		}
		close(start)
		wg.Wait()
		if n := c.Healthy(); n != 1 {
			t.Fatalf("round %d: %d backends up after each failed once on traffic, want 1", i, n)
		}
	}
}

// A backend whose checks fail Fall times in a row is down, however much traffic it answers
// between them (a health path that reports a broken dependency, a backend answering 503 to
// everything): answers end a run of failures on traffic, not of checks.
func TestChecksTakeDownABackendThatStillAnswersTraffic(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 3}}, urls(bs...)...)
	k := keyOn(t, c, bs[0].url)
	bs[0].sick.Store(true)
	for _, uri := range []string{"/x", "/500"} {
		check(t, c, bs[0].url)
		if got := open(t, c, k, uri); got.Header.Get("X-Backend") != bs[0].name {
			t.Fatalf("GET %s answered by %q, want %s", uri, got.Header.Get("X-Backend"), bs[0].name)
		}
	}
	check(t, c, bs[0].url)
	if s := server(t, c, bs[0].url); s.State != "down" || s.Failures != 3 {
		t.Errorf("after 3 failed checks with answers between: %+v, want down, 3 failures", s)
	}
}

// A request the backend drops after reading it (a handler that panics, a firewall resetting on a
// signature) fails, and is retried, but is no passive failure of either backend: else any client
// could take every backend but one down with a few such requests (security review).
func TestRequestsTheBackendDropsDoNotTakeItDown(t *testing.T) {
	bs := startBackends(t, 3)
	c := newPool(t, Options{Health: HealthOptions{Fall: 1}}, urls(bs...)...)
	for i := range 12 {
		if _, err := fetch(c, &Request{Method: http.MethodGet, URI: "/drop?i=" + strconv.Itoa(i)}); err == nil {
			t.Fatal("a dropped request succeeded")
		}
	}
	for _, b := range bs {
		if s := server(t, c, b.url); s.State != "up" || s.Failures != 0 {
			t.Errorf("%s after 12 dropped requests: %+v, want up, no failure in a row", b.name, s)
		}
	}
	if c.Healthy() != 3 {
		t.Errorf("%d of 3 backends up, want 3", c.Healthy())
	}
}
