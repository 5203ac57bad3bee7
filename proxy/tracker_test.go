package proxy_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/swrproxy/swrproxy/proxy"
)

// TestTheFillingRequestIsNotDemandButAHitIs: the hot-key tracker hears of the request whose fill
// stored an entry as Filled (it asked before the copy existed: a key asked for once gets no
// record and is never refreshed ahead), and of every request served a stored copy as TouchAt.
func TestTheFillingRequestIsNotDemandButAHitIs(t *testing.T) {
	origin := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "ok")
	})
	h := newHandler(t, origin.URL)
	tracker := &keyTracker{}
	h.Tracker = tracker
	a := testApp{proxy.NewApp(h, nil)}
	expect(t, a.get(t, "/once"), 200, "MISS", "ok")
	expect(t, a.get(t, "/twice"), 200, "MISS", "ok")
	expect(t, a.get(t, "/twice"), 200, "HIT", "ok")
	tracker.mu.Lock()
	got := slices.Clone(tracker.keys)
	tracker.mu.Unlock()
	if want := []string{"filled /once", "filled /twice", "touch /twice"}; !slices.Equal(got, want) {
		t.Errorf("the tracker was told %q, want %q", got, want)
	}
}
