package tiers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

func TestRedisOutageTripsTheBreakerAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, outageClient(t, srv))
	var mu sync.Mutex
	var changes []bool
	s.OnL2Change = func(open bool) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, open)
	}
	run(t, s)
	ctx := t.Context()
	if err := s.Set(ctx, testEntry("/before", "b")); err != nil {
		t.Fatalf("Set before the outage: %v", err)
	}
	if s.L2Open() || !s.HasL2() {
		t.Fatalf("before the outage: L2Open %v, HasL2 %v; want false, true", s.L2Open(), s.HasL2())
	}

	srv.Stop()
	for i := 1; !s.L2Open(); i++ {
		if i > 3 {
			t.Fatalf("circuit still closed after %d failed Gets", i-1)
		}
		start := time.Now()
		o, tier, err := s.Get(ctx, "/down")
		if d := time.Since(start); d > time.Second {
			t.Errorf("Get %d with Redis down took %v, want < 1s", i, d)
		}
		if o != nil || tier != Miss || err == nil {
			t.Errorf("Get %d with Redis down = %+v, %v, %v; want nil, miss, an error", i, o, tier, err)
		}
	}
	if s.L2Errors() == 0 {
		t.Errorf("L2Errors = 0 after failed Gets")
	}

	start := time.Now()
	for i := range 100 {
		if o, tier, err := s.Get(ctx, "/down"); o != nil || tier != Miss || !errors.Is(err, ErrL2Unavailable) {
			t.Fatalf("Get %d with the circuit open = %+v, %v, %v; want ErrL2Unavailable", i, o, tier, err)
		}
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("100 Gets with the circuit open took %v, want < 50ms (no network)", d)
	}

	during := testEntry("/during", "d")
	if err := s.Set(ctx, during); !errors.Is(err, ErrL2Unavailable) {
		t.Errorf("Set with the circuit open = %v, want ErrL2Unavailable", err)
	}
	if o, tier, err := s.Get(ctx, "/during"); only(o) != during || tier != L1 || err != nil {
		t.Errorf("Get of what Set stored during the outage = %+v, %v, %v; want it from l1", o, tier, err)
	}
	if err := s.Delete(ctx, "/before"); !errors.Is(err, ErrL2Unavailable) {
		t.Errorf("Delete with the circuit open = %v, want ErrL2Unavailable", err)
	}
	if o := s.Peek("/before"); !isMiss(o) {
		t.Errorf("Peek after Delete with the circuit open = %+v, want the l1 copy cleared", o)
	}
	if l, ok, err := s.TryLock(ctx, "/during", time.Second); l != nil || !ok || !errors.Is(err, ErrL2Unavailable) {
		t.Errorf("TryLock with the circuit open = %v, %v, %v; want nil, true, ErrL2Unavailable", l, ok, err)
	}
	if s.Locked(ctx, "/during") {
		t.Errorf("Locked with the circuit open = true, want false")
	}

	srv.Restart()
	testenv.WaitFor(t, 10*time.Second, "the circuit to close", func() bool { return !s.L2Open() })
	if o := s.Peek("/during"); o != nil {
		t.Errorf("Peek after the circuit closed = %+v, want l1 dropped (invalidations may have been missed)", o)
	}
	if o, tier, err := s.Get(ctx, "/during"); o != nil || tier != Miss || err != nil {
		t.Errorf("Get after the circuit closed = %+v, %v, %v; want a miss from the (empty) restarted Redis", o, tier, err)
	}
	after := testEntry("/after", "a")
	if err := s.Set(ctx, after); err != nil {
		t.Errorf("Set after the circuit closed: %v", err)
	}
	s.Forget("/after")
	if o, tier, err := s.Get(ctx, "/after"); entryDiff(only(o), after) != "" || tier != L2 || err != nil {
		t.Errorf("Get after the circuit closed = %+v, %v, %v; want the entry from l2", o, tier, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(changes, []bool{true, false}) {
		t.Errorf("OnL2Change calls = %v, want [true false]", changes)
	}
}

func TestBreakerOpensOnlyAfterConsecutiveTransportFailures(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name     string
		errs     []error
		wantOpen bool
	}{
		{"nothing", nil, false},
		{"two refusals", []error{refused, refused}, false},
		{"three refusals", []error{refused, refused, refused}, true},
		{"three timeouts", []error{context.DeadlineExceeded, context.DeadlineExceeded, fmt.Errorf("tiers: l2 get: %w", context.DeadlineExceeded)}, true},
		{"pool timeouts and a closed client", []error{redis.ErrPoolTimeout, redis.ErrClosed, net.ErrClosed}, true},
		{"resets and EOF", []error{errors.New("read: connection reset by peer"), io.EOF, errors.New("write: broken pipe")}, true},
		{"loading", []error{errors.New("LOADING Redis is loading"), refused, refused}, true},
		{"an answer in between", []error{refused, refused, nil, refused, refused}, false},
		{"a miss in between", []error{refused, refused, redis.Nil, refused, refused}, false},
		{"a script error in between", []error{refused, refused, errors.New("ERR user_script:1: bad"), refused, refused}, false},
		{"script errors only", []error{errors.New("ERR x"), errors.New("NOSCRIPT"), errors.New("WRONGTYPE")}, false},
		{"misses only", []error{redis.Nil, redis.Nil, redis.Nil}, false},
	}
	for _, tt := range tests {
		var calls []bool
		b := breaker{tripAfter: 3, onChange: func(open bool) { calls = append(calls, open) }}
		for _, err := range tt.errs {
			b.record(err)
		}
		if open := !b.allow(); open != tt.wantOpen {
			t.Errorf("%s: open = %v, want %v", tt.name, open, tt.wantOpen)
		}
		if tt.wantOpen && !slices.Equal(calls, []bool{true}) {
			t.Errorf("%s: onChange calls = %v, want [true]", tt.name, calls)
		}
		if tt.wantOpen {
			b.record(refused) // more failures while open change nothing
			b.set(false)
			b.set(false)
			if !b.allow() || !slices.Equal(calls, []bool{true, false}) {
				t.Errorf("%s: after closing: allow %v, onChange calls %v; want true, [true false]", tt.name, b.allow(), calls)
			}
		}
	}
}
