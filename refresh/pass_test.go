package refresh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/internal/testenv"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// The response may be private to the request it was fetched for: only that caller gets it,
// and every other caller of the flight gets one fetched for itself.
func TestAnUncacheableResponseIsPassedToOneCaller(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB: more than one read
	o := newTestOrigin(t, true, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)

	const n = 5
	type result struct {
		res     *fill.Result
		err     error
		body    []byte
		readErr error
	}
	results := make([]result, n)
	ctxs := make([]*waitingCtx, n)
	var wg sync.WaitGroup
	for i := range n {
		ctxs[i] = newWaitingCtx(t.Context())
		wg.Go(func() {
			r := result{}
			r.res, r.err = f.Fill(ctxs[i], request("/p"))
			if r.err == nil && r.res.Pass != nil && r.res.Pass.Body != nil {
				r.body, r.readErr = io.ReadAll(r.res.Pass.Body)
				r.res.Pass.Body.Close()
			}
			results[i] = r
		})
	}
	waitJoined(t, ctxs...)
	testenv.WaitFor(t, 5*time.Second, "the flight's origin request", func() bool { return o.hits.Load() == 1 })
	o.release()
	wg.Wait()

	passes := map[*fill.Pass]bool{}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("Fill %d: %v", i, r.err)
		}
		if r.res.Entry != nil || r.res.Pass == nil || r.res.Pass.Body == nil {
			t.Fatalf("Fill %d = %+v, want a Pass of its own to stream", i, r.res)
		}
		if passes[r.res.Pass] {
			t.Errorf("Fill %d got a Pass another caller got too, want each caller's own", i)
		}
		passes[r.res.Pass] = true
		if r.res.NotStored != "no-store" {
			t.Errorf("Fill %d: NotStored = %q, want no-store", i, r.res.NotStored)
		}
		if r.readErr != nil || !bytes.Equal(r.body, body) {
			t.Errorf("Fill %d body: %d bytes, error %v; want the %d bytes sent", i, len(r.body), r.readErr, len(body))
		}
		p := r.res.Pass
		if p.Status != http.StatusOK || p.Reason != "no-store" || p.Length != int64(len(body)) {
			t.Errorf("Pass = status %d, reason %q, length %d; want 200, no-store, %d", p.Status, p.Reason, p.Length, len(body))
		}
	}
	if got := o.hits.Load(); got != n {
		t.Errorf("origin requests = %d, want %d: the flight's, then one for each other caller", got, n)
	}
	if got := s.Peek("/p"); got != nil {
		t.Errorf("stored %+v for a no-store response, want nothing", got)
	}
}

func TestAResponseLargerThanMaxObjectBytesIsPassedWhole(t *testing.T) {
	const limit = 1000
	tests := []struct {
		name    string
		size    int
		chunked bool // no Content-Length
		pass    bool
	}{
		{"content-length over the limit", 5 * limit, false, true},
		{"chunked over the limit", 5 * limit, true, true},
		{"chunked one byte over the limit", limit + 1, true, true},
		{"content-length at the limit", limit, false, false},
		{"chunked at the limit", limit, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := make([]byte, tt.size)
			for i := range body {
				body[i] = byte('a' + i%26)
			}
			o := newTestOrigin(t, false, func(w http.ResponseWriter, _ *http.Request, _ int64) {
				w.Header().Set("Cache-Control", "max-age=60")
				if !tt.chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
					w.Write(body)
					return
				}
				for b := body; len(b) > 0; {
					n := min(len(b), 100)
					w.Write(b[:n])
					w.(http.Flusher).Flush()
					b = b[n:]
				}
			})
			s := newTestStore(t, nil)
			f := newTestFiller(t, s, o)
			f.MaxObjectBytes = limit

			r := request("/big")
			res, err := f.Fill(t.Context(), r)
			if err != nil {
				t.Fatalf("Fill: %v", err)
			}
			if !tt.pass {
				if res.Entry == nil || !bytes.Equal(res.Entry.Body, body) {
					t.Fatalf("Fill = %+v, want an entry with the %d bytes sent", res, len(body))
				}
				if variant(s, "/big") != res.Entry {
					t.Errorf("a body of exactly MaxObjectBytes was not stored")
				}
				return
			}
			if res.Entry != nil || res.Pass == nil {
				t.Fatalf("Fill = %+v, want a Pass", res)
			}
			if res.NotStored != "too-big" || res.Pass.Reason != "too-big" {
				t.Errorf("NotStored, Reason = %q, %q; want too-big", res.NotStored, res.Pass.Reason)
			}
			wantLen := int64(len(body))
			if tt.chunked {
				wantLen = -1
			}
			if res.Pass.Length != wantLen {
				t.Errorf("Pass.Length = %d, want %d", res.Pass.Length, wantLen)
			}
			if res.Pass.Body == nil {
				t.Fatal("Pass.Body = nil, want the body for the request it was fetched for")
			}
			got, err := io.ReadAll(res.Pass.Body)
			res.Pass.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("Pass body: %d bytes, error %v; want the %d bytes sent", len(got), err, len(body))
			}
			if s.Peek("/big") != nil || f.stats.Stored.Load() != 0 {
				t.Errorf("a body over MaxObjectBytes was stored")
			}
		})
	}
}

// closeBody is a response body that records whether it was closed.
type closeBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *closeBody) Close() error { b.closed.Store(true); return nil }

// A refresh job streams to nobody: the body of an uncacheable response it fetched is closed at
// once, releasing the origin connection.
func TestABackgroundFillClosesTheBodyItFetched(t *testing.T) {
	o := newTestOrigin(t, false, cacheable)
	f := newTestFiller(t, newTestStore(t, nil), o)
	body := &closeBody{Reader: strings.NewReader("body")}
	f.Origin = fetchFunc(func(context.Context, *upstream.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Cache-Control": {"no-store"}}, Body: body, ContentLength: -1}, nil
	})

	e, err := f.background(t.Context(), request("/p"))
	if e != nil || err != nil {
		t.Fatalf("background = %+v, %v; want nil, nil for a response that is not stored", e, err)
	}
	if !body.closed.Load() {
		t.Error("the body of the response the background fill fetched is still open")
	}
}

// A refresh job that joined a client's fetch leaves the client's response to it: the client
// streams it whole, and the job does not ask the origin again.
func TestABackgroundFillLeavesTheBodyOfTheClientThatLedToIt(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<12)
	o := newTestOrigin(t, true, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
	f := newTestFiller(t, newTestStore(t, nil), o)

	var wg sync.WaitGroup
	var res *fill.Result
	var err error
	wg.Go(func() { res, err = f.Fill(t.Context(), request("/p")) })
	testenv.WaitFor(t, 5*time.Second, "the client's origin request", func() bool { return o.hits.Load() == 1 })
	job := newWaitingCtx(t.Context())
	var e *tiers.Entry
	var jobErr error
	wg.Go(func() { e, jobErr = f.background(job, request("/p")) })
	waitJoined(t, job)
	o.release()
	wg.Wait()

	if err != nil || res.Pass == nil || res.Pass.Body == nil {
		t.Fatalf("client Fill = %+v, %v; want a Pass to stream", res, err)
	}
	got, readErr := io.ReadAll(res.Pass.Body)
	res.Pass.Body.Close()
	if readErr != nil || !bytes.Equal(got, body) {
		t.Errorf("client body: %d bytes, error %v; want the %d bytes sent", len(got), readErr, len(body))
	}
	if jobErr != nil || e != nil {
		t.Errorf("background = %v, %v; want nil, nil", e, jobErr)
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin requests = %d, want 1: the job asked nothing for itself", n)
	}
}

// A waiter that has a stale copy it may serve on error does not ask a failing origin again when
// the flight brought an error page private to the request that led it.
func TestAWaiterWithAStaleIfErrorCopyDoesNotAskAFailingOriginAgain(t *testing.T) {
	o := newTestOrigin(t, true, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Cache-Control", "private")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "down for you")
	})
	f := newTestFiller(t, newTestStore(t, nil), o)
	stale := staleEntry("/a")
	stale.StaleIfError = time.Hour

	var wg sync.WaitGroup
	var leader, waiter *fill.Result
	var errLeader, errWaiter error
	wg.Go(func() { leader, errLeader = f.Fill(t.Context(), request("/a")) })
	testenv.WaitFor(t, 5*time.Second, "the leader's origin request", func() bool { return o.hits.Load() == 1 })
	ctx := newWaitingCtx(t.Context())
	r := request("/a")
	r.Stale = stale
	wg.Go(func() { waiter, errWaiter = f.Fill(ctx, r) })
	waitJoined(t, ctx)
	o.release()
	wg.Wait()

	if errLeader != nil || leader.Pass == nil || leader.Pass.Body == nil || leader.Pass.Status != http.StatusServiceUnavailable {
		t.Fatalf("leader Fill = %+v, %v; want its 503 to stream", leader, errLeader)
	}
	leader.Pass.Body.Close()
	if waiter != nil || !errors.Is(errWaiter, errFailedForAnother) || timesOut(errWaiter) {
		t.Errorf("waiter Fill = %+v, %v; want an error wrapping errFailedForAnother that is no timeout", waiter, errWaiter)
	}
	if n := o.hits.Load(); n != 1 {
		t.Errorf("origin requests = %d, want 1", n)
	}
}
