package upstream

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestWhenEveryBackendIsDownDoFailsAtOnce(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{Timeout: 5 * time.Second, Health: HealthOptions{Fall: 2}}, urls(bs...)...)
	for _, b := range bs {
		markDown(t, c, b.url)
	}
	start := time.Now()
	_, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x"})
	if elapsed := time.Since(start); elapsed > 500*time.Millisecond {
		t.Errorf("Do took %v with every backend down, want it at once", elapsed)
	}
	var ue *Error
	if !errors.Is(err, ErrAllDown) || !errors.Is(err, ErrUnavailable) || !errors.As(err, &ue) {
		t.Fatalf("Do = %v, want an *Error wrapping ErrAllDown and ErrUnavailable", err)
	}
	if st := c.Stats(); st.Unavailable != 1 || st.Up != 0 || st.Backends != 2 {
		t.Errorf("Stats = %+v, want 1 unavailable, 0 of 2 up", st)
	}
	if n := bs[0].hits.Load() + bs[1].hits.Load(); n != 0 {
		t.Errorf("the backends got %d requests, want none", n)
	}
	idle(t, c)
}

// A client that would wait for a budget slot when no backend is up would wait for nothing:
// with every backend down, Do fails at once even with the budget full.
func TestWhenEveryBackendIsDownDoDoesNotWaitForTheBudget(t *testing.T) {
	bs := startBackends(t, 1)
	c := newPool(t, Options{Budget: BudgetOptions{Local: 1, MaxWait: 2 * time.Second}}, bs[0].url)
	held := open(t, c, "", "/hold") // the only slot
	markDown(t, c, bs[0].url)
	start := time.Now()
	_, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x"})
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Do took %v with every backend down, want it at once", elapsed)
	}
	if !errors.Is(err, ErrAllDown) {
		t.Errorf("Do = %v, want ErrAllDown", err)
	}
	held.Body.Close()
	idle(t, c)
}

func TestAGETWhoseBackendRefusesIsRetriedOnAnother(t *testing.T) {
	good := startBackend(t, "good")
	bad := refusing(t)
	c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 100}}, good.url, bad)
	k := keyOn(t, c, bad)
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodOptions} {
		resp, err := c.Do(t.Context(), &Request{Method: method, URI: "/x", Key: k})
		if err != nil {
			t.Fatalf("%s with its first backend refusing: %v, want the answer of the other", method, err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Backend"); got != "good" {
			t.Errorf("%s answered by %q, want good", method, got)
		}
	}
	st := c.Stats()
	if st.Retries != 3 || st.Success != 3 || st.Failed != 3 {
		t.Errorf("Stats = %+v, want 3 retries, 3 successes, 3 failures", st)
	}
	if s := server(t, c, bad); s.Failed != 3 || s.Failures != 3 || s.State != "up" {
		t.Errorf("refusing backend: %+v, want 3 failed, 3 failures in a row, still up (Fall is 100)", s)
	}
	idle(t, c)
}

func TestAPOSTWithABodyIsNeverRetried(t *testing.T) {
	good := startBackend(t, "good")
	bad := refusing(t)
	c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 100}}, good.url, bad)
	k := keyOn(t, c, bad)
	tests := []struct {
		name string
		body io.Reader
		n    int64
	}{
		{"sized", strings.NewReader("a=1"), 3},
		{"chunked", strings.NewReader("a=1"), -1},
	}
	for _, tt := range tests {
		_, err := fetch(c, &Request{Method: http.MethodPost, URI: "/form", Key: k, Body: tt.body, ContentLength: tt.n})
		if err == nil || errors.Is(err, ErrUnavailable) {
			t.Errorf("%s POST to a refusing backend: %v, want its dial error", tt.name, err)
		}
	}
	if n := good.hits.Load(); n != 0 {
		t.Errorf("the other backend got %d requests, want none", n)
	}
	if n := c.Stats().Retries; n != 0 {
		t.Errorf("Retries = %d, want 0", n)
	}
	idle(t, c)
}

func TestAPOSTWithoutABodyIsRetriedOnlyWhenNothingWasSent(t *testing.T) {
	bs := startBackends(t, 2)
	bad := refusing(t)
	c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 100}}, bs[0].url, bs[1].url, bad)
	// Refused: nothing reached a backend, so sending it to another is safe.
	k := keyOn(t, c, bad)
	for _, body := range []io.Reader{nil, http.NoBody, strings.NewReader("")} {
		if _, err := fetch(c, &Request{Method: http.MethodPost, URI: "/act", Key: k, Body: body}); err != nil {
			t.Errorf("POST (body %T) to a refusing backend: %v, want it sent to another", body, err)
		}
	}
	if n := c.Stats().Retries; n != 3 {
		t.Errorf("Retries = %d, want 3", n)
	}
	// Dropped after it was sent: the backend may have acted on it; never twice.
	k = keyOn(t, c, bs[0].url)
	if _, err := fetch(c, &Request{Method: http.MethodPost, URI: "/drop", Key: k}); err == nil {
		t.Error("POST /drop: no error, want the dropped connection's")
	}
	if n := c.Stats().Retries; n != 3 {
		t.Errorf("Retries = %d after a POST dropped once sent, want still 3", n)
	}
	// A GET dropped the same way is idempotent: it is retried.
	if got, err := fetch(c, &Request{Method: http.MethodGet, URI: "/drop?then=ok", Key: k}); err == nil {
		t.Errorf("GET /drop answered by %s: every backend drops it, want an error", got)
	}
	if n := c.Stats().Retries; n != 4 {
		t.Errorf("Retries = %d after a dropped GET, want 4", n)
	}
	idle(t, c)
}

func TestFiveHundredsCountAsFailedButKeepTheBackendUp(t *testing.T) {
	bs := startBackends(t, 2)
	c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 1}}, urls(bs...)...)
	k := keyOn(t, c, bs[0].url)
	for range 3 {
		resp := open(t, c, k, "/500")
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("status %d, want the origin's 500 relayed", resp.StatusCode)
		}
	}
	s := server(t, c, bs[0].url)
	if s.State != "up" || s.Failed != 3 || s.Success != 0 || s.Failures != 0 {
		t.Errorf("after three 500s: %+v, want up with 3 failed (an answer is no passive failure)", s)
	}
	if st := c.Stats(); st.Failed != 3 || st.Retries != 0 {
		t.Errorf("Stats = %+v, want 3 failed, no retry (a 500 is an answer)", st)
	}
}

func TestARetryIsCountedOnlyWhenThereIsAnotherBackendToSendItTo(t *testing.T) {
	good := startBackend(t, "good")
	bad := refusing(t)
	c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 100}}, good.url, bad)
	markDown(t, c, good.url)
	if _, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x"}); err == nil {
		t.Fatal("GET to the refusing backend, the other down: no error")
	}
	if st := c.Stats(); st.Retries != 0 || st.Failed != 1 {
		t.Errorf("Stats = %+v, want no retry (there was nowhere to send one), 1 failed", st)
	}
}
