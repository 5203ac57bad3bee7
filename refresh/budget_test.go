package refresh

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/upstream"
)

// A fill refused by a full origin budget fails with the budget's error (the request path's 503),
// and does not count as an origin failure: the origin was never asked.
func TestAFillRefusedByTheBudgetIsNotAnOriginError(t *testing.T) {
	s := newTestStore(t, nil)
	o := newTestOrigin(t, true, cacheable)
	f := newTestFiller(t, s, o)
	u, _ := url.Parse(o.URL)
	origin, err := upstream.New(upstream.Options{Backends: []*url.URL{u}, Timeout: 5 * time.Second,
		Budget: upstream.BudgetOptions{Local: 1, MaxWait: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	f.Origin = origin

	held := make(chan error, 1)
	go func() { // takes the only slot until the origin is released
		_, err := f.Fill(t.Context(), request("/held"))
		held <- err
	}()
	testenv.WaitFor(t, 5*time.Second, "the first fill to reach the origin", func() bool { return o.hits.Load() == 1 })

	_, err = f.Fill(t.Context(), request("/refused"))
	if !errors.Is(err, upstream.ErrBudget) || !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("fill with the budget full: %v, want upstream.ErrBudget", err)
	}
	if n := f.Stats().OriginErrors; n != 0 {
		t.Errorf("origin errors = %d after a budget refusal, want 0", n)
	}
	o.release()
	if err := <-held; err != nil {
		t.Fatalf("held fill: %v", err)
	}
}
