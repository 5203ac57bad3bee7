package proxy_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/tiers"
)

// keyTracker records the keys it is told of: "touch <key>" for a request served from cache,
// "filled <key>" for the request whose fill stored the entry.
type keyTracker struct {
	mu   sync.Mutex
	keys []string
}

func (k *keyTracker) TouchAt(key string, _ *tiers.Object, _ *tiers.Entry, _ time.Time) {
	k.add("touch " + key)
}
func (k *keyTracker) PromotedAt(key string, _ *tiers.Entry, _ time.Time) {
	k.add("promoted " + key)
}
func (k *keyTracker) Filled(key string, _ *tiers.Entry) { k.add("filled " + key) }

func (k *keyTracker) add(s string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys = append(k.keys, s)
}

// touched counts what the tracker was told of key, either way.
func (k *keyTracker) touched(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, s := range k.keys {
		if strings.HasSuffix(s, " "+key) {
			n++
		}
	}
	return n
}

func TestARuleWithoutRefreshAheadNeverTracksItsKeysOnAMissOrAHit(t *testing.T) {
	origin := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "ok")
	})
	h := newHandler(t, origin.URL)
	h.Policy = loadPolicy(t, "rules:\n  - match: {path_prefix: /quiet/}\n    refresh_ahead: false\n", "")
	tracker := &keyTracker{}
	h.Tracker = tracker
	a := testApp{proxy.NewApp(h, nil)}
	for _, path := range []string{"/quiet/a", "/loud/a"} {
		expect(t, a.get(t, path), 200, "MISS", "ok")
		expect(t, a.get(t, path), 200, "HIT", "ok")
	}
	if n := tracker.touched("/quiet/a"); n != 0 {
		t.Errorf("/quiet/a (refresh_ahead: false) was tracked %d times", n)
	}
	if n := tracker.touched("/loud/a"); n != 2 {
		t.Errorf("/loud/a was tracked %d times, want 2 (the fill and the hit): %q", n, slices.Clone(tracker.keys))
	}
}

func TestAGuessedEntryIsServedToCookieClientsWhenTheRuleStripsTheirCookies(t *testing.T) {
	origin := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "cookie=%q", r.Header.Get("Cookie")) // no Cache-Control: SWR_DEFAULT_TTL, guessed
	})
	h := newHandler(t, origin.URL)
	h.Policy = loadPolicy(t, "rules:\n  - match: {path_prefix: /stripped/}\n    strip_cookies: true\n", "")
	a := testApp{proxy.NewApp(h, nil)}
	expect(t, a.get(t, "/stripped/a"), 200, "MISS", `cookie=""`)
	expect(t, a.get(t, "/stripped/a", "Cookie", "session=1"), 200, "HIT", `cookie=""`)
	expect(t, a.get(t, "/plain/a"), 200, "MISS", `cookie=""`)
	if r := a.get(t, "/plain/a", "Cookie", "session=1"); r.Header.Get("X-Cache") == "HIT" {
		t.Errorf("a guessed entry was served to a client whose cookie reaches the origin")
	}
}
