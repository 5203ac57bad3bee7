package upstream

import (
	"context"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

func TestNewRefusesAnEmptyPoolAndAnUnknownBalance(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without backends: no error")
	}
	u, _ := url.Parse("http://127.0.0.1:1")
	if _, err := New(Options{Backends: []*url.URL{u}, Balance: "random"}); err == nil {
		t.Error("New with balance random: no error")
	}
	if _, err := New(Options{Backends: []*url.URL{{Scheme: "ftp", Host: "x"}}}); err == nil {
		t.Error("New with an ftp backend: no error")
	}
	c, err := New(Options{Backends: []*url.URL{u, u}})
	if err != nil || len(c.Servers()) != 1 || c.Balance() != BalanceRoundRobin {
		t.Errorf("New with one URL twice = %v; want one backend, round_robin", err)
	}
}

func TestRunReturnsPromptlyAndLeavesNoGoroutine(t *testing.T) {
	bs := startBackends(t, 2)
	srv := redistest.Start(t)
	rdb := client(t, srv)
	c := newPool(t, Options{Health: HealthOptions{Interval: 20 * time.Millisecond}, Redis: rdb, PoolSecret: testPoolSecret,
		Budget: BudgetOptions{Fleet: 4}}, urls(bs...)...)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	testenv.WaitFor(t, 2*time.Second, "health checks of both backends", func() bool {
		return bs[0].checks.Load() >= 2 && bs[1].checks.Load() >= 2
	})
	subscribed(t, rdb, 1)
	mustFetch(t, c, "", "/x") // a fleet slot taken and given back
	// A membership change starts and stops loops.
	if _, err := c.Remove(t.Context(), bs[1].url); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return within 1s of its context's end")
	}
	testenv.WaitFor(t, 2*time.Second, "the goroutines of Run to end", func() bool {
		return len(runGoroutines()) == 0
	})
}

// runGoroutines are the stacks of the goroutines that Run starts, directly or through go-redis
// (the pool's subscription), other than the caller's.
func runGoroutines() []string {
	buf := make([]byte, 1<<20)
	var out []string
	for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "upstream.Test") || strings.Contains(g, "upstream.runPool") {
			continue
		}
		if strings.Contains(g, "swrproxy/upstream.") || strings.Contains(g, "go-redis/v9.(*channel)") ||
			strings.Contains(g, "go-redis/v9.(*PubSub)") {
			out = append(out, g)
		}
	}
	return out
}
