package refresh

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/upstream"
)

// fillRecovering calls f.Fill and turns a panic that escapes it into a value, so one failing case
// does not end the test binary.
func fillRecovering(fillFn func(context.Context, *fill.Request) (*fill.Result, error), r *fill.Request) (res *fill.Result, panicked any, err error) {
	defer func() { panicked = recover() }()
	res, err = fillFn(context.Background(), r)
	return res, nil, err
}

func TestAPanicInTheOriginIsReturnedAsAnError(t *testing.T) {
	tests := []struct {
		name  string
		redis bool
		set   func(r *fill.Request)
	}{
		{"collapsed", false, func(*fill.Request) {}},
		{"collapsed, with redis", true, func(*fill.Request) {}},
		{"authorization", false, func(r *fill.Request) { r.Authorization = true }},
		{"alone", false, nil},
		{"background", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rdb redis.UniversalClient
			if tt.redis {
				rdb = redistest.Start(t).Client()
			}
			o := newTestOrigin(t, false, cacheable)
			s := newTestStore(t, rdb)
			f := newTestFiller(t, s, o)
			working := f.Origin
			f.Origin = fetchFunc(func(context.Context, *upstream.Request) (*http.Response, error) {
				panic("origin client bug")
			})

			r := request("/a")
			fillFn := f.Fill
			switch tt.name {
			case "alone":
				fillFn = func(ctx context.Context, r *fill.Request) (*fill.Result, error) { return f.alone(ctx, r, "") }
			case "background":
				fillFn = func(ctx context.Context, r *fill.Request) (*fill.Result, error) {
					e, err := f.background(ctx, r)
					if e == nil && err != nil {
						return nil, err
					}
					return &fill.Result{Entry: e}, err
				}
			default:
				tt.set(r)
			}
			res, panicked, err := fillRecovering(fillFn, r)
			if panicked != nil {
				t.Fatalf("Fill panicked with %v; want the panic returned as an error", panicked)
			}
			var ue *upstream.Error
			if res != nil || !errors.Is(err, errPanic) || errors.As(err, &ue) {
				t.Errorf("Fill = %+v, %v; want an error wrapping errPanic, not an *upstream.Error (the origin did not fail)", res, err)
			}
			if timesOut(err) {
				t.Error("the error says it is a timeout (a client would get 504), want 502 as before")
			}
			if s.Locked(t.Context(), "/a") {
				t.Error("the fetch lock is still held after the panic")
			}

			// The key is not stuck: the next fill reaches the origin.
			f.Origin = working
			res, err = f.Fill(t.Context(), request("/a"))
			if err != nil || res.Entry == nil || string(res.Entry.Body) != "v1" {
				t.Errorf("Fill after the panic = %+v, %v; want v1 from the origin", res, err)
			}
		})
	}
}
