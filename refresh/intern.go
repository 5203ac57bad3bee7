package refresh

import "sync"

// interned keeps one copy of the request field values entries keep for their refreshes
// (replayHeader): most entries are filled by a few kinds of client, whose User-Agent and Accept
// values repeat. Bounded: at most internMax values of at most internValueMax bytes (about
// 1 MiB); when full it starts over, so values a client floods it with do not stay, and what is
// common comes back at once.
type interned struct {
	mu     sync.Mutex
	values map[string]string
}

const (
	internMax      = 4096
	internValueMax = 256
)

var replayValues interned

// of returns the kept copy of v, keeping v (a copy) if there is none. Longer values are copied
// alone.
func (in *interned) of(v string) string {
	if len(v) > internValueMax {
		return string([]byte(v))
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if s, ok := in.values[v]; ok {
		return s
	}
	if in.values == nil || len(in.values) >= internMax {
		in.values = make(map[string]string, 64)
	}
	s := string([]byte(v))
	in.values[s] = s
	return s
}
