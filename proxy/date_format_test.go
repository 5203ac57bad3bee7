package proxy

import (
	"net/http"
	"testing"
	"time"
)

// TestTheCurrentDateIsFormattedOncePerSecond: the Date a reply without one gets is the current
// second as an HTTP-date, formatted once per second, not per reply.
func TestTheCurrentDateIsFormattedOncePerSecond(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 11, 30, 0, 100, time.UTC)
	a := currentDate(t0)
	if string(a) != "Thu, 03 Dec 2026 11:30:00 GMT" {
		t.Fatalf("currentDate = %q", a)
	}
	if b := currentDate(t0.Add(800 * time.Millisecond)); &b[0] != &a[0] {
		t.Error("the same second was formatted again")
	}
	if n := testing.AllocsPerRun(100, func() { currentDate(t0.Add(900 * time.Millisecond)) }); n != 0 {
		t.Errorf("currentDate within a second: %v allocations, want 0", n)
	}
	local := t0.Add(time.Second).In(time.FixedZone("x", 3600))
	if c := currentDate(local); string(c) != local.UTC().Format(http.TimeFormat) {
		t.Errorf("next second: %q, want %q", c, local.UTC().Format(http.TimeFormat))
	}
}
