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
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

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
	waitFor(t, 5*time.Second, "the client's origin request", func() bool { return o.hits.Load() == 1 })
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
	waitFor(t, 5*time.Second, "the leader's origin request", func() bool { return o.hits.Load() == 1 })
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
