package upstream

import (
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/testenv"
)

// A body nobody reads or closes (its reader went away: a fill that outlived its client) is closed
// by its idle timeout, so that what it holds comes back: the backend's in-flight count, the
// connection (security review: the slot was held forever).
func TestAnIdleTimeoutClosesABodyNobodyReads(t *testing.T) {
	b := startBackend(t, "a")
	c := newPool(t, Options{}, b.url)
	resp := open(t, c, "", "/hold")
	cancelled := make(chan struct{})
	_ = IdleTimeout(resp.Body, 50*time.Millisecond, func() { close(cancelled) })
	testenv.WaitFor(t, 5*time.Second, "the idle body to be closed", func() bool {
		return server(t, c, b.url).InFlight == 0
	})
	select {
	case <-cancelled:
	default:
		t.Error("the idle timeout closed the body without cancelling the request")
	}
}
