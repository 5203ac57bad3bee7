package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Every path out of Do gives back the budget slot and the in-flight count: with one slot, the
// next request still gets through.
func TestEveryErrorReleasesTheBudgetSlotAndTheInFlightCount(t *testing.T) {
	good := startBackend(t, "good")
	bad := refusing(t)
	tests := []struct {
		name string
		do   func(t *testing.T, c *Client)
	}{
		{"not retried", func(t *testing.T, c *Client) {
			_, err := fetch(c, &Request{Method: http.MethodPost, URI: "/x", Key: keyOn(t, c, bad),
				Body: strings.NewReader("x"), ContentLength: 1})
			if err == nil {
				t.Error("POST to a refusing backend: no error")
			}
		}},
		{"retried and failed again", func(t *testing.T, c *Client) {
			_, err := fetch(c, &Request{Method: http.MethodGet, URI: "/drop", Key: keyOn(t, c, good.url)})
			if err == nil {
				t.Error("GET /drop: no error")
			}
		}},
		{"retried with nowhere to go", func(t *testing.T, c *Client) {
			markDown(t, c, good.url)
			defer c.passed(c.member(good.url), time.Now())
			_, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x", Key: keyOn(t, c, bad)})
			if err == nil {
				t.Error("GET to the refusing backend, the other down: no error")
			}
		}},
		{"all down", func(t *testing.T, c *Client) {
			markDown(t, c, good.url)
			markDown(t, c, bad)
			defer c.passed(c.member(good.url), time.Now())
			defer c.passed(c.member(bad), time.Now())
			if _, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x"}); !errors.Is(err, ErrAllDown) {
				t.Errorf("Do = %v, want ErrAllDown", err)
			}
		}},
		{"cancelled", func(t *testing.T, c *Client) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := c.Do(ctx, &Request{Method: http.MethodGet, URI: "/x", Key: keyOn(t, c, good.url)}); err == nil {
				t.Error("Do with a cancelled context: no error")
			}
		}},
		{"deadline while the body is read", func(t *testing.T, c *Client) {
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			// /hold sends its header block at once: read the body until the deadline cuts it.
			resp, err := c.Do(ctx, &Request{Method: http.MethodGet, URI: "/hold", Key: keyOn(t, c, good.url)})
			if err != nil {
				t.Fatalf("GET /hold: %v", err)
			}
			if _, err := io.Copy(io.Discard, resp.Body); err == nil {
				t.Error("reading /hold past the deadline: no error")
			}
			resp.Body.Close()
			resp.Body.Close() // twice: released once
		}},
		{"bad target", func(t *testing.T, c *Client) {
			if _, err := c.Do(t.Context(), &Request{Method: http.MethodGet, URI: "/a b"}); err == nil {
				t.Error("Do of /a b: no error")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newPool(t, Options{Balance: BalanceKeyHash, Health: HealthOptions{Fall: 100, Rise: 1},
				Budget: BudgetOptions{Local: 1}}, good.url, bad)
			tt.do(t, c)
			idle(t, c)
			if got, err := fetch(c, &Request{Method: http.MethodGet, URI: "/x", Key: keyOn(t, c, good.url)}); err != nil || got != "good" {
				t.Fatalf("the next request: %q, %v; want it answered by good", got, err)
			}
			idle(t, c)
		})
	}
}

// A budget slot bounds the origin's work on a request, up to its headers: an open body (a long
// download, a stream) does not hold it, or a few clients could hold the whole budget (security
// review). The request stays in flight on its backend until the body is closed, once.
func TestABudgetSlotIsFreeOnceTheHeadersAreIn(t *testing.T) {
	b := startBackend(t, "a")
	c := newPool(t, Options{Budget: BudgetOptions{Local: 1}}, b.url)
	resp := open(t, c, "", "/x")
	second := open(t, c, "", "/x")
	if s := server(t, c, b.url); s.InFlight != 2 {
		t.Errorf("in flight = %d with two bodies open, want 2", s.InFlight)
	}
	if st := c.Stats(); st.Budget.InUse != 0 {
		t.Errorf("budget in use = %d with only bodies open, want 0", st.Budget.InUse)
	}
	resp.Body.Close()
	resp.Body.Close()
	second.Body.Close()
	idle(t, c)
	if s := server(t, c, b.url); s.InFlight != 0 {
		t.Errorf("in flight = %d after the bodies closed (one twice), want 0", s.InFlight)
	}
}
