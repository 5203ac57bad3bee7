package refresh

import (
	"strings"
	"sync"

	"github.com/swrproxy/swrproxy/tiers"
)

// interned keeps one copy of field values entries keep: the request fields replayed by their
// refreshes (replayHeader; most entries are filled by a few kinds of client, whose User-Agent
// and Accept values repeat), or the names and values of the response fields they store
// (newEntry; types, cache directives, dates and server names repeat). Bounded: at most
// internMax values of at most internValueMax bytes (about 1 MiB a table); when full it starts
// over, so values a client floods it with do not stay, and what is common comes back at once.
type interned struct {
	mu     sync.Mutex
	values map[string]string
	// fields are whole replay field lists, by their fields joined: most entries keep one of a
	// few lists, and then share its slice too. At most internFieldsMax lists (of at most
	// maxReplay bytes each, 2 MiB in all); when full it starts over.
	fields map[string]*[]tiers.Field
}

const (
	internMax       = 4096
	internValueMax  = 256
	internFieldsMax = 1024
)

// replayValues holds the request field values entries keep for refreshes, storedValues the
// names and values of the response fields they store (a value unique to one response, a
// Last-Modified or a request id, costs one copy as without it; one a client floods it with does
// not stay).
var replayValues, storedValues interned

// of returns the kept copy of v, keeping v (a copy) if there is none. Longer values are copied
// alone.
func (in *interned) of(v string) string {
	if len(v) > internValueMax {
		return strings.Clone(v)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if s, ok := in.values[v]; ok {
		return s
	}
	if in.values == nil || len(in.values) >= internMax {
		in.values = make(map[string]string, 64)
	}
	s := strings.Clone(v)
	in.values[s] = s
	return s
}

// list returns the kept copy of fs, a replay field list of interned values, keeping fs if there
// is none. Entries never modify it.
func (in *interned) list(fs []tiers.Field) *[]tiers.Field {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.Name)
		b.WriteByte(0)
		b.WriteString(f.Value)
		b.WriteByte(0)
	}
	key := b.String()
	in.mu.Lock()
	defer in.mu.Unlock()
	if kept, ok := in.fields[key]; ok {
		return kept
	}
	if in.fields == nil || len(in.fields) >= internFieldsMax {
		in.fields = make(map[string]*[]tiers.Field, 16)
	}
	in.fields[key] = &fs
	return &fs
}
