package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/proxy"
	"github.com/swrproxy/swrproxy/tiers"
)

type panicTracker struct{}

func (panicTracker) TouchAt(string, *tiers.Object, *tiers.Entry, time.Time) { panic("tracker broke") }
func (panicTracker) PromotedAt(string, *tiers.Entry, time.Time)             { panic("tracker broke") }
func (panicTracker) Filled(string, *tiers.Entry)                            { panic("tracker broke") }

type quietTracker struct{}

func (quietTracker) TouchAt(string, *tiers.Object, *tiers.Entry, time.Time) {}
func (quietTracker) PromotedAt(string, *tiers.Entry, time.Time)             {}
func (quietTracker) Filled(string, *tiers.Entry)                            {}

func TestAPanicWhileServingAnswers500AndTheAppKeepsServing(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "ok")
	}))
	defer origin.Close()
	h := newHandler(t, origin.URL)
	h.Tracker = panicTracker{}
	app := proxy.NewApp(h, nil)

	res, err := app.Test(httptest.NewRequest(http.MethodGet, "/p", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", res.StatusCode)
	}
	h.Tracker = quietTracker{}
	res, err = app.Test(httptest.NewRequest(http.MethodGet, "/p", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != "ok" || res.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("after the panic: %d %s %q, want 200 HIT ok", res.StatusCode, res.Header.Get("X-Cache"), body)
	}
}
