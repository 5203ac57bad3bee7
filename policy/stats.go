package policy

import (
	"sync/atomic"

	"github.com/swrproxy/swrproxy/policy/wasm"
)

// Hook names and the reasons a hook call fails, the label values of
// swrproxy_policy_errors_total{hook,reason}: the wasm package's, listed so that every series
// exists (at 0) from the start.
var (
	Hooks   = [...]string{string(wasm.OnRequest), string(wasm.OnResponse)}
	Reasons = [...]string{wasm.ReasonTimeout, wasm.ReasonTrap, wasm.ReasonBadOutput, wasm.ReasonBusy, wasm.ReasonInstantiate}
)

// hookErrors counts failed hook calls by hook and reason (Hooks × Reasons); a reason not in
// Reasons counts as a trap.
type hookErrors [len(Hooks)][len(Reasons)]atomic.Int64

func (e *hookErrors) add(hook, reason string) {
	for i, h := range Hooks {
		for j, r := range Reasons {
			if h == hook && r == reason {
				e[i][j].Add(1)
				return
			}
		}
	}
	if reason != wasm.ReasonTrap {
		e.add(hook, wasm.ReasonTrap)
	}
}

// Stats is a snapshot of the holder's counters.
type Stats struct {
	Reloads, Failures int64 // successful and rejected reloads since start
	// Errors[i][j] is the count of Hooks[i]'s failed calls for Reasons[j].
	Errors [len(Hooks)][len(Reasons)]int64
}

// Stats returns the counters now.
func (h *Holder) Stats() Stats {
	s := Stats{Reloads: h.reloads.Load(), Failures: h.failures.Load()}
	for i := range h.errors {
		for j := range h.errors[i] {
			s.Errors[i][j] = h.errors[i][j].Load()
		}
	}
	return s
}
