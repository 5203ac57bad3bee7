package refresh

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/tiers"
	"github.com/swrproxy/swrproxy/upstream"
)

// newTestStore returns a real Store: L1 only when rdb is nil, else L1 and L2 in rdb.
func newTestStore(t testing.TB, rdb redis.UniversalClient) *tiers.Store {
	t.Helper()
	s, err := tiers.New(tiers.Options{
		L1MaxBytes: 64 << 20,
		L1MaxTTL:   time.Minute,
		Redis:      rdb,
		L2Timeout:  time.Second, // the race detector makes Redis calls slow
		Log:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("tiers.New: %v", err)
	}
	return s
}

// testOrigin is a real httptest origin that counts its requests and, when held, keeps every
// request waiting until release.
type testOrigin struct {
	*httptest.Server
	hits atomic.Int64
	gate chan struct{}
	once sync.Once
}

// newTestOrigin starts an origin that answers with h, passing the request's 1-based number.
func newTestOrigin(t *testing.T, held bool, h func(w http.ResponseWriter, r *http.Request, n int64)) *testOrigin {
	t.Helper()
	o := &testOrigin{gate: make(chan struct{})}
	if !held {
		o.release()
	}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := o.hits.Add(1)
		select {
		case <-o.gate:
		case <-r.Context().Done():
			return
		}
		h(w, r, n)
	}))
	t.Cleanup(o.Close)
	t.Cleanup(o.release) // runs first: Close waits for held requests
	return o
}

// release lets held requests (and every later one) through.
func (o *testOrigin) release() { o.once.Do(func() { close(o.gate) }) }

// cacheable answers 200 with a body naming the request number, fresh for a minute.
func cacheable(w http.ResponseWriter, _ *http.Request, n int64) {
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("ETag", `"v`+strconv.FormatInt(n, 10)+`"`)
	io.WriteString(w, "v"+strconv.FormatInt(n, 10))
}

// newTestFiller returns a Filler of the real origin client for o, storing into s.
func newTestFiller(t *testing.T, s *tiers.Store, o *testOrigin) *Filler {
	t.Helper()
	u, err := url.Parse(o.URL)
	if err != nil {
		t.Fatalf("parse origin URL: %v", err)
	}
	origin, err := upstream.New(upstream.Options{Backends: []*url.URL{u}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("upstream.New: %v", err)
	}
	return &Filler{
		Store:          s,
		Origin:         origin,
		MaxObjectBytes: 1 << 20,
		Timeout:        5 * time.Second,
		LockTTL:        2 * time.Second,
		Log:            slog.New(slog.DiscardHandler),
	}
}

// request is a client's GET of key (a target without host) that varies on nothing.
func request(key string) *fill.Request {
	return &fill.Request{Key: key, URI: key, Header: http.Header{}, Value: func(string) string { return "" }}
}

// waitingCtx closes joined when the caller first waits on it. Fill selects on ctx.Done only after
// it joined the key's flight, so once joined is closed the caller shares the flight in progress.
type waitingCtx struct {
	context.Context
	once   sync.Once
	joined chan struct{}
}

func newWaitingCtx(parent context.Context) *waitingCtx {
	return &waitingCtx{Context: parent, joined: make(chan struct{})}
}

func (c *waitingCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.joined) })
	return c.Context.Done()
}

// waitJoined waits until every caller joined its flight.
func waitJoined(t *testing.T, ctxs ...*waitingCtx) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for i, c := range ctxs {
		select {
		case <-c.joined:
		case <-timeout:
			t.Fatalf("caller %d did not join the flight within 5s", i)
		}
	}
}

// variant returns the stored variant of key in s's L1, or nil.
func variant(s *tiers.Store, key string) *tiers.Entry {
	o := s.Peek(key)
	if o == nil {
		return nil
	}
	return o.Variant(func(string) string { return "" })
}

// fieldValues returns the values of the stored header field name, in order.
func fieldValues(e *tiers.Entry, name string) []string {
	var vs []string
	for _, f := range e.Header {
		if f.Name == name {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// fetchFunc adapts a function to Fetcher.
type fetchFunc func(ctx context.Context, r *upstream.Request) (*http.Response, error)

func (f fetchFunc) Do(ctx context.Context, r *upstream.Request) (*http.Response, error) {
	return f(ctx, r)
}

// timesOut reports whether err says it is a timeout, as proxy's status reads it (504, not 502).
func timesOut(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
