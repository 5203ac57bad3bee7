package tiers

import (
	"encoding/binary"
	"slices"
	"strings"
	"sync"
)

// Interned keeps one copy of field values entries keep: the request fields replayed by their
// refreshes (most entries are filled by a few kinds of client, whose User-Agent and Accept values
// repeat), or the names and values of the response fields they store (types, cache directives,
// dates and server names repeat); used by refresh's newEntry and replayHeader, and by compact
// for an entry promoted from L2. Bounded: at most internMax values of at most internValueMax
// bytes (about 1 MiB a table); when full it starts over, so values a client floods it with do not
// stay, and what is common comes back at once. The zero value is ready to use; safe for
// concurrent use.
type Interned struct {
	mu     sync.Mutex
	values map[string]string
	// fields are whole replay field lists, by their fields (each name and value after its
	// length, so that no two lists read alike): most entries keep one of a few lists, and then
	// share its slice too. At most internFieldsMax lists of at most MaxReplayBytes each (2 MiB
	// in all); when full it starts over.
	fields map[string]*[]Field
}

// MaxReplayBytes bounds the request fields (names and values) an entry keeps for its background
// refreshes: refresh keeps no more, and a list decoded from L2 that is longer is not interned.
const MaxReplayBytes = 2 << 10

const (
	internMax       = 4096
	internValueMax  = 256
	internFieldsMax = 1024
)

// ReplayValues holds the request field values entries keep for refreshes, StoredValues the
// names and values of the response fields they store (a value unique to one response, a
// Last-Modified or a request id, costs one copy as without it; one a client floods it with does
// not stay).
var ReplayValues, StoredValues Interned

// Of returns the kept copy of v, keeping v (a copy) if there is none. Longer values are copied
// alone.
func (in *Interned) Of(v string) string {
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

// List returns the kept copy of fs, a replay field list of interned values, keeping a copy of
// fs (at its length) if there is none. Entries never modify it. A list already kept costs no
// allocation: its key is built on the stack and the map is read with it in place. A list of
// more than MaxReplayBytes is copied alone, not kept.
func (in *Interned) List(fs []Field) *[]Field {
	var buf [512]byte
	key := buf[:0]
	size := 0
	for _, f := range fs {
		size += len(f.Name) + len(f.Value)
		key = binary.AppendUvarint(key, uint64(len(f.Name)))
		key = binary.AppendUvarint(append(key, f.Name...), uint64(len(f.Value)))
		key = append(key, f.Value...)
	}
	if size > MaxReplayBytes {
		kept := slices.Clone(fs)
		return &kept
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if kept, ok := in.fields[string(key)]; ok {
		return kept
	}
	if in.fields == nil || len(in.fields) >= internFieldsMax {
		in.fields = make(map[string]*[]Field, 16)
	}
	kept := make([]Field, len(fs))
	copy(kept, fs)
	in.fields[string(key)] = &kept
	return &kept
}
