package proxy_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/refresh"
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

// TestARequestServedFromL2IsAPromotionThenAHit: the first request an instance serves from L2
// (a copy another instance filled) is told to the tracker as a promotion, not as demand (the
// tracker makes no record for it, as for a fill); the next one, from L1, is a hit.
func TestARequestServedFromL2IsAPromotionThenAHit(t *testing.T) {
	origin := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "ok")
	})
	rs := redistest.Start(t)
	filler, other := newHandlerWith(t, origin.URL, 64<<20, rs.Client(), refresh.Compression{}), newHandlerWith(t, origin.URL, 64<<20, rs.Client(), refresh.Compression{})
	tracker := &keyTracker{}
	other.Tracker = tracker
	expect(t, testApp{proxy.NewApp(filler, nil)}.get(t, "/shared"), 200, "MISS", "ok")
	a := testApp{proxy.NewApp(other, nil)}
	expect(t, a.get(t, "/shared"), 200, "HIT", "ok")
	expect(t, a.get(t, "/shared"), 200, "HIT", "ok")
	tracker.mu.Lock()
	got := slices.Clone(tracker.keys)
	tracker.mu.Unlock()
	if want := []string{"promoted /shared", "touch /shared"}; !slices.Equal(got, want) {
		t.Errorf("the tracker was told %q, want %q", got, want)
	}
}
