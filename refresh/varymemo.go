package refresh

import (
	"slices"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
)

// varyMemo remembers, per key, the request fields the origin last said it varies on, for longer
// than the variants live. A fill forwards only the fields it knows to be keyed (proxy's
// allowlist, plus those the stored variants vary on); on a first miss it knows none, and when the
// origin turns out to vary on a field it did not send, Fill fetches again with it: one origin
// request too many per cold key, for every key of an origin that varies on Origin, say. The memo
// makes that happen once per key an hour at most. Bounded in bytes; safe for concurrent use.
type varyMemo struct {
	once  sync.Once
	cache *otter.Cache[string, []string]
}

// varyMemoBytes bounds the memo: about 30 000 keys of 100 bytes with one name.
const varyMemoBytes = 4 << 20

func (m *varyMemo) init() {
	m.once.Do(func() {
		m.cache = otter.Must(&otter.Options[string, []string]{
			MaximumWeight: varyMemoBytes,
			Weigher: func(k string, names []string) uint32 {
				n := 96 + len(k)
				for _, s := range names {
					n += 16 + len(s)
				}
				return uint32(n)
			},
			ExpiryCalculator: otter.ExpiryWriting[string, []string](time.Hour),
		})
	})
}

// names returns what key's responses vary on, or nil.
func (m *varyMemo) names(key string) []string {
	m.init()
	v, _ := m.cache.GetIfPresent(key)
	return v
}

// learn records that key's response varies on names (canonical, sorted; shared, not modified).
func (m *varyMemo) learn(key string, names []string) {
	if len(names) == 0 {
		return
	}
	m.init()
	if old, ok := m.cache.GetIfPresent(key); ok && slices.Equal(old, names) {
		return
	}
	m.cache.Set(key, names)
}

// encodesMemo remembers the keys whose origin sent an encoded answer that varies on
// Accept-Encoding to a fill that asked for identity (compression on): it encodes whatever it is
// asked, so its fills forward the client's Accept-Encoding and store a variant per coding, as
// without compression, instead of asking for identity first every time. Bounded in bytes (about
// 10 000 keys of 100 bytes), an hour per key; safe for concurrent use.
type encodesMemo struct {
	once  sync.Once
	cache *otter.Cache[string, struct{}]
}

const encodesMemoBytes = 2 << 20

func (m *encodesMemo) init() {
	m.once.Do(func() {
		m.cache = otter.Must(&otter.Options[string, struct{}]{
			MaximumWeight:    encodesMemoBytes,
			Weigher:          func(k string, _ struct{}) uint32 { return uint32(96 + len(k)) },
			ExpiryCalculator: otter.ExpiryWriting[string, struct{}](time.Hour),
		})
	})
}

func (m *encodesMemo) holds(key string) bool {
	m.init()
	_, ok := m.cache.GetIfPresent(key)
	return ok
}

func (m *encodesMemo) learn(key string) {
	m.init()
	m.cache.Set(key, struct{}{})
}
