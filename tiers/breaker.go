package tiers

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrL2Unavailable is returned, at once and without touching the network, while the Redis circuit is open.
var ErrL2Unavailable = errors.New("tiers: l2 unavailable (circuit open)")

// epoch anchors the monotonic nanoseconds of breaker.answered.
var epoch = time.Now()

// breaker is the Redis circuit breaker. After tripAfter consecutive transport failures it opens:
// every L2 call fails fast with ErrL2Unavailable, so a dead Redis costs requests nothing. It also
// opens at once when a call got no answer for a whole deadline while Redis answered nothing else
// since the call was sent (see stalled). Store.Run probes Redis while it is open and closes it on
// the first answer. Safe for concurrent use; the closed-state check is one atomic load.
type breaker struct {
	open      atomic.Bool
	failures  atomic.Int32
	tripAfter int32
	// answered is when Redis last answered a call (ns on the monotonic clock since epoch).
	answered atomic.Int64

	mu       sync.Mutex
	onChange func(open bool) // called under mu (see set), in the goroutine that changed the state
}

func (b *breaker) allow() bool { return !b.open.Load() }

// record notes the outcome of one L2 call. Only transport problems count: a script error or a
// missing key says Redis is up.
func (b *breaker) record(err error) {
	if !isTransportError(err) {
		if isAnswer(err) {
			if now := int64(time.Since(epoch)); b.answered.Load() < now {
				b.answered.Store(now)
			}
		}
		if b.failures.Load() != 0 {
			b.failures.Store(0)
		}
		return
	}
	if b.failures.Add(1) >= b.tripAfter {
		b.set(true)
	}
}

// stalled notes that a call sent at sent got no answer for a whole Redis deadline. If Redis
// answered nothing since the call was sent, it is stalled (stopped, overloaded, or the network to
// it): the circuit opens now instead of after tripAfter such calls, or a lone request would pay
// one deadline per call it makes (lookup, lock, store). A slow answer to one call among answered
// ones changes nothing.
func (b *breaker) stalled(sent time.Time) {
	if b.answered.Load() < int64(sent.Sub(epoch)) {
		b.set(true)
	}
}

// isAnswer reports whether err (not a transport error) came with an answer from Redis.
func isAnswer(err error) bool {
	var re redis.Error
	return err == nil || errors.Is(err, redis.Nil) || errors.As(err, &re)
}

// set opens or closes the circuit. Closing calls onChange first, so that what it drops (L1
// copies that may have missed invalidations) is gone before anything uses L2 again; opening
// calls it after. onChange must not call back into the breaker.
func (b *breaker) set(open bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures.Store(0)
	if b.open.Load() == open {
		return
	}
	if !open && b.onChange != nil {
		b.onChange(false)
	}
	b.open.Store(open)
	if open && b.onChange != nil {
		b.onChange(true)
	}
}

func isTransportError(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, net.ErrClosed) || isConnReset(err)
}

func isConnReset(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	s := err.Error()
	for _, m := range []string{"connection refused", "connection reset", "broken pipe", "EOF", "i/o timeout", "LOADING"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// probe pings Redis every interval while the circuit is open and closes it when Redis answers.
// It blocks until ctx is cancelled.
func (b *breaker) probe(ctx context.Context, rdb redis.UniversalClient, interval, timeout time.Duration) {
	every(ctx, interval, func() {
		if b.allow() {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			b.record(nil)
			b.set(false)
		}
	})
}

// every calls f every interval until ctx is cancelled.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
