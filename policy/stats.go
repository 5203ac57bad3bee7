package policy

import (
	"sync/atomic"

	"github.com/swrproxy/swrproxy/policy/wasm"
)

// Hook names and the reasons a hook call fails, the label values of
// swrproxy_policy_errors_total{hook,reason}: the wasm package's, listed so that every series
// exists (at 0) from the start.
var (
	Hooks   = []string{string(wasm.OnRequest), string(wasm.OnResponse)}
	Reasons = []string{wasm.ReasonTimeout, wasm.ReasonTrap, wasm.ReasonBadOutput, wasm.ReasonBusy, wasm.ReasonInstantiate}
)

// hookErrors counts failed hook calls by hook and reason (Hooks × Reasons, in that order); a
// reason not in Reasons counts as a trap.
type hookErrors [2 * 5]atomic.Int64

func (e *hookErrors) add(hook, reason string) {
	for i, h := range Hooks {
		for j, r := range Reasons {
			if h == hook && r == reason {
				e[i*len(Reasons)+j].Add(1)
				return
			}
		}
	}
	if reason != wasm.ReasonTrap {
		e.add(hook, wasm.ReasonTrap)
	}
}

// HookErrors is the count of one hook's failed calls for one reason.
type HookErrors struct {
	Hook, Reason string
	N            int64
}

// Stats is a snapshot of the holder's counters.
type Stats struct {
	Reloads, Rejected int64        // successful and rejected reloads since start
	Errors            []HookErrors // every hook × reason, in Hooks × Reasons order
}

// Stats returns the counters now.
func (h *Holder) Stats() Stats {
	s := Stats{Reloads: h.reloads.Load(), Rejected: h.failures.Load()}
	for i, hook := range Hooks {
		for j, r := range Reasons {
			s.Errors = append(s.Errors, HookErrors{Hook: hook, Reason: r, N: h.errors[i*len(Reasons)+j].Load()})
		}
	}
	return s
}
