package refresh

import (
	"context"
	"errors"
	"fmt"
)

// The failures of a fill that are not the origin's (those are *upstream.Error).
var (
	// errPanic is wrapped by the error of a fill that panicked: one bad response must not take
	// the process down.
	errPanic = errors.New("panic")
	// errFailedForAnother is wrapped by the error of a fill that waited on another request's
	// fetch, which the origin answered with an error (one that may be private to that request, or
	// one stored for everyone), while the waiter has a good stale copy it may serve instead
	// (stale-if-error).
	errFailedForAnother = errors.New("origin failed for the request that led the flight")
	// errStillFailing is wrapped by the error of a fill not sent: the origin's last answer for
	// the key was an error with a lifetime that has not ended, and the caller has a good stale
	// copy it may serve instead (see failingMarks).
	errStillFailing = errors.New("the origin's last error for the key is still fresh")
)

// waitError is the error of a fill whose context ended while it waited for another instance's
// fetch of key (through the Redis lock).
type waitError struct {
	key string
	err error
}

func (e *waitError) Error() string {
	return fmt.Sprintf("refresh: wait for another instance's fetch of %q: %v", e.key, e.err)
}

func (e *waitError) Unwrap() error { return e.err }

// Timeout reports whether the wait ran out of time (a client gets 504, as for an origin timeout).
func (e *waitError) Timeout() bool { return errors.Is(e.err, context.DeadlineExceeded) }
