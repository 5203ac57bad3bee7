package tiers

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// calls returns how many times Redis has run the given commands (INFO commandstats names, like
// "set" or "evalsha"), counting those run by scripts.
func calls(t testing.TB, raw *redis.Client, cmds ...string) int64 {
	t.Helper()
	info, err := raw.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	var n int64
	for line := range strings.SplitSeq(info, "\n") {
		for _, cmd := range cmds {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls="); ok {
				c, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
				n += c
			}
		}
	}
	return n
}

// warmClock takes and drops a lock, so that s knows the server's clock (as any instance does
// after its first lock) and the next lock call is the script itself.
func warmClock(t *testing.T, s *Store) {
	t.Helper()
	l, ok, err := s.TryLock(t.Context(), "/warm-up", 5*time.Second)
	if !ok || err != nil {
		t.Fatalf("TryLock to warm up = %v, %v", ok, err)
	}
	l.Unlock()
}

// A stalled Redis runs, when it resumes, every command it received meanwhile. A lock call sent
// into the stall, whose caller went ahead without the lock after one deadline, must not leave a
// lock behind: nobody would renew or delete it, and fills of the key would wait its whole TTL.
// After a long stall the call takes nothing; after one so short that the call still ran in time,
// the caller deletes what it took.
func TestALockCallSentIntoAStallLeavesNoLockWhenRedisResumes(t *testing.T) {
	tests := []struct {
		name   string
		freeze time.Duration // from the lock call; it times out after 250 ms
		takes  bool          // whether the lock call may still take the lock when Redis resumes
	}{
		{"long stall", time.Second, false},
		{"stall as long as the deadline", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			s := newStore(t, outageClient(t, srv))
			run(t, s)
			other := newStore(t, outageClient(t, srv)) // another instance, idle during the stall
			raw := srv.Client()
			ctx := t.Context()
			warmClock(t, s)
			lk := redisKey("/stalled") + lockSuffix
			sets, lockCalls := calls(t, raw, "set"), calls(t, raw, "set", "evalsha", "eval")

			srv.Freeze()
			start := time.Now()
			l, ok, err := s.TryLock(ctx, "/stalled", 5*time.Second)
			took := time.Since(start)
			time.Sleep(time.Until(start.Add(tt.freeze))) // the rest of the stall: nothing to poll for
			srv.Thaw()
			resumed := time.Now()
			if l != nil || !ok || err == nil {
				l.Unlock()
				t.Fatalf("TryLock with Redis frozen = %v, %v, %v; want nil, true (go ahead without it), an error", l, ok, err)
			}
			if took > time.Second {
				t.Errorf("TryLock with Redis frozen took %v, want about one deadline (250 ms)", took)
			}

			testenv.WaitFor(t, 5*time.Second, "the lock call to reach Redis", func() bool { return calls(t, raw, "set", "evalsha", "eval") > lockCalls })
			if n := calls(t, raw, "set") - sets; n != 0 && !tt.takes {
				t.Errorf("the lock call sent into a %v stall took the lock when Redis resumed (%d SET)", tt.freeze, n)
			}
			// Within about one deadline of Redis resuming, another instance gets the lock.
			var l2 *Lock
			testenv.WaitFor(t, time.Second, "another instance to get the lock", func() bool {
				l2, ok, _ = other.TryLock(ctx, "/stalled", 5*time.Second)
				return ok
			})
			t.Logf("another instance took the lock %v after Redis resumed", time.Since(resumed).Round(time.Millisecond))
			if got := raw.Get(ctx, lk).Val(); len(got) != 24 {
				t.Errorf("lock value = %q, want the other instance's token", got)
			}
			l2.Unlock()
			testenv.WaitFor(t, 5*time.Second, "the background release to end", func() bool { return s.releasing.Load() == 0 }) // the background release ended
		})
	}
}

// relay is a TCP proxy to Redis that can lose Redis's answers (commands still reach Redis and
// run, their callers never hear back), or hold each read of them for delay before passing it on
// (a slow Redis, or a slow link to it: an answer read in two parts is held twice).
type relay struct {
	ln    net.Listener
	lose  atomic.Bool
	delay atomic.Int64 // nanoseconds
}

func startRelay(t *testing.T, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("relay: listen: %v", err)
	}
	r := &relay{ln: ln}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() { // ends when ln is closed
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, d)
			mu.Unlock()
			wg.Go(func() { io.Copy(d, c); d.Close() }) // ends when either side closes
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := d.Read(buf)
					if n > 0 {
						// A sleep, not a wait for a condition: the slow answer is what is tested.
						time.Sleep(time.Duration(r.delay.Load()))
					}
					if n > 0 && !r.lose.Load() {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	return r
}

// A lock call may run and its answer be lost (a stall right after it ran, a broken connection):
// the caller went ahead without the lock, and nobody knows the lock is there. The caller must
// find it and delete it once Redis answers again.
func TestALockWhoseAnswerWasLostIsReleased(t *testing.T) {
	srv := redistest.Start(t)
	rl := startRelay(t, srv.Addr())
	s := newStore(t, clientTo(t, rl.ln.Addr().String()))
	run(t, s)
	other := newStore(t, srv.Client())
	raw := srv.Client()
	ctx := t.Context()
	warmClock(t, s)
	lk := redisKey("/lost") + lockSuffix

	rl.lose.Store(true)
	l, ok, err := s.TryLock(ctx, "/lost", 5*time.Second)
	if l != nil || !ok || err == nil {
		l.Unlock()
		t.Fatalf("TryLock whose answer is lost = %v, %v, %v; want nil, true (go ahead without it), an error", l, ok, err)
	}
	// While answers are lost the circuit stays open (Run's probe gets none) and nothing is released.
	if raw.Exists(ctx, lk).Val() != 1 {
		t.Fatalf("setup: the lock call did not run in Redis, or its lock was deleted while Redis could not answer")
	}
	rl.lose.Store(false)
	start := time.Now()
	testenv.WaitFor(t, 3*time.Second, "the lock to be released", func() bool { return raw.Exists(ctx, lk).Val() == 0 })
	t.Logf("the lock whose answer was lost was released %v after TryLock returned", time.Since(start).Round(time.Millisecond))
	l, ok, err = other.TryLock(ctx, "/lost", 5*time.Second)
	if !ok || err != nil {
		t.Fatalf("TryLock on another instance after the release = %v, %v; want the lock", ok, err)
	}
	l.Unlock()
}

// Unlock during a stall does not wait on Redis, and the lock is still released once it is back.
func TestUnlockDuringAStallReleasesOnceRedisIsBack(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, outageClient(t, srv))
	run(t, s)
	raw := srv.Client()
	ctx := t.Context()
	l, ok, err := s.TryLock(ctx, "/held", 5*time.Second)
	if !ok || err != nil {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	lk := redisKey("/held") + lockSuffix

	srv.Freeze()
	s.Get(ctx, "/another") // the fill's store, say: one deadline, and the circuit opens
	if !s.L2Open() {
		t.Fatalf("circuit closed after a call that Redis did not answer for a whole deadline")
	}
	start := time.Now()
	l.Unlock()
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("Unlock with the circuit open took %v, want no Redis call", took)
	}
	srv.Thaw()
	testenv.WaitFor(t, 3*time.Second, "the lock to be released", func() bool { return raw.Exists(ctx, lk).Val() == 0 })
}

// A lock call that Redis runs after its limit writes nothing, however wrong this instance's idea
// of the server's clock: the answer corrects it.
func TestALockCallRunAfterItsLimitTakesNothing(t *testing.T) {
	srv := redistest.Start(t)
	raw := srv.Client()
	s := newStore(t, srv.Client())
	ctx := t.Context()
	warmClock(t, s)
	now := time.Now()
	server, _ := s.clock.At(now)
	s.clock.Sample(now, server-10_000) // this instance believes the server's clock is 10 s behind
	lk := redisKey("/late") + lockSuffix

	l, ok, err := s.TryLock(ctx, "/late", 5*time.Second)
	if l != nil || !ok || !errors.Is(err, errLockLate) {
		l.Unlock()
		t.Fatalf("TryLock with a limit in the past = %v, %v, %v; want nil, true, errLockLate", l, ok, err)
	}
	if n := raw.Exists(ctx, lk).Val(); n != 0 {
		t.Errorf("a lock call run after its limit took the lock")
	}
	l, ok, err = s.TryLock(ctx, "/late", 5*time.Second)
	if l == nil || !ok || err != nil {
		t.Fatalf("TryLock after the clock was corrected = %v, %v, %v; want a held lock", l, ok, err)
	}
	l.Unlock()
}

// The first request after Redis stalls must not pay one deadline per call it makes (lookup, lock,
// store): one call without an answer for a whole deadline, while Redis answered nothing else,
// opens the circuit.
func TestOneStalledCallOpensTheCircuit(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, outageClient(t, srv))
	run(t, s)
	ctx := t.Context()
	if err := s.Set(ctx, testEntry("/before", "b")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	srv.Freeze()
	if _, _, err := s.Get(ctx, "/frozen"); err == nil {
		t.Fatalf("Get with Redis frozen: no error")
	}
	if !s.L2Open() {
		t.Errorf("circuit closed after one call Redis did not answer for a whole deadline")
	}
	start := time.Now()
	if l, ok, err := s.TryLock(ctx, "/frozen", 5*time.Second); l != nil || !ok || !errors.Is(err, ErrL2Unavailable) {
		t.Errorf("TryLock after the stall = %v, %v, %v; want nil, true, ErrL2Unavailable", l, ok, err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("TryLock with the circuit open took %v, want no Redis call", took)
	}
	srv.Thaw()
	testenv.WaitFor(t, 5*time.Second, "the circuit to close", func() bool { return !s.L2Open() })
}

// A slow answer among answers is not a stall: the circuit stays closed.
func TestASlowCallAmongAnsweredOnesKeepsTheCircuitClosed(t *testing.T) {
	b := breaker{tripAfter: 3}
	sent := time.Now()
	b.record(nil) // another call answered after this one was sent
	b.stalled(sent)
	if !b.allow() {
		t.Errorf("circuit open after a stalled call although Redis answered another one since")
	}
	b.stalled(time.Now()) // sent after the last answer
	if b.allow() {
		t.Errorf("circuit closed after a call Redis did not answer, with no answer since it was sent")
	}
}

// Only a lock call that may have run is followed by a background release.
func TestOnlyALockCallThatMayHaveRunIsReleased(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool // known: certainly took no lock
	}{
		{"refused dial", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}, true},
		{"pool timeout", redis.ErrPoolTimeout, true},
		{"closed client", redis.ErrClosed, true},
		{"error reply", proto("ERR user_script:1: oops"), true},
		{"read timeout", &net.OpError{Op: "read", Net: "tcp", Err: errTimeout{}}, false},
		{"deadline", context.DeadlineExceeded, false},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, false},
		{"EOF", io.EOF, false},
	}
	for _, tt := range tests {
		if got := known(tt.err); got != tt.want {
			t.Errorf("%s: known(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

type errTimeout struct{}

func (errTimeout) Error() string { return "i/o timeout" }
func (errTimeout) Timeout() bool { return true }

// proto is a Redis error reply, as go-redis returns it.
type proto string

func (e proto) Error() string { return string(e) }
func (proto) RedisError()     {}
