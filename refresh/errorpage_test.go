package refresh

import (
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/testenv"
)

// TestOnlyAnAnonymousUnvariedServerErrorPageIsSharedByTheFlight: a small 5xx page fetched for
// one request of a flight goes to every waiter (a failing origin is not asked again by each), but
// a page that may be one client's is not: a 429 (rate limits are per client, the page may name
// its address), a page with Vary (chosen by fields the waiters may not share), and any answer to
// requests with Cookie (which collapse with each other whatever their cookies). Those waiters
// fetch their own. (Security review: a Cookie user's "rate limited, alice" page reached the
// other Cookie users of the flight.)
func TestOnlyAnAnonymousUnvariedServerErrorPageIsSharedByTheFlight(t *testing.T) {
	tests := []struct {
		name   string
		status int
		vary   string
		cookie bool
		shared bool
	}{
		{"anonymous 503", http.StatusServiceUnavailable, "", false, true},
		{"anonymous 429", http.StatusTooManyRequests, "", false, false},
		{"anonymous 503 with Vary", http.StatusServiceUnavailable, "Accept-Language", false, false},
		{"cookie 503", http.StatusServiceUnavailable, "", true, false},
		{"cookie 503 with Vary: Cookie", http.StatusServiceUnavailable, "Cookie", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newTestOrigin(t, true, func(w http.ResponseWriter, r *http.Request, n int64) {
				if tt.vary != "" {
					w.Header().Set("Vary", tt.vary)
				}
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(tt.status)
				io.WriteString(w, "page for "+r.Header.Get("Cookie")+r.Header.Get("Accept-Language"))
			})
			f := newTestFiller(t, newTestStore(t, nil), o)
			const n = 4
			bodies := make([]string, n)
			errs := make([]error, n)
			ctxs := make([]*waitingCtx, n)
			var wg sync.WaitGroup
			for i := range n {
				ctxs[i] = newWaitingCtx(t.Context())
				r := request("/e")
				who := string(rune('a' + i))
				if tt.cookie {
					r.Header.Set("Cookie", "user="+who)
					r.Cookie = true
				} else if tt.vary != "" {
					r.Header.Set("Accept-Language", who)
				}
				wg.Go(func() {
					res, err := f.Fill(ctxs[i], r)
					if errs[i] = err; err != nil {
						return
					}
					switch p := res.Pass; {
					case p == nil:
						errs[i] = io.ErrUnexpectedEOF
					case p.Shared != nil:
						bodies[i] = string(p.Shared)
					default:
						b, _ := io.ReadAll(p.Body)
						p.Body.Close()
						bodies[i] = string(b)
					}
				})
			}
			waitJoined(t, ctxs...)
			testenv.WaitFor(t, 5*time.Second, "the flight's origin request", func() bool { return o.hits.Load() >= 1 })
			o.release()
			wg.Wait()

			leader := ""
			for i, err := range errs {
				if err != nil {
					t.Fatalf("Fill %d: %v", i, err)
				}
				if leader == "" {
					leader = bodies[i]
				}
			}
			wantHits := int64(n)
			if tt.shared {
				wantHits = 1
			}
			if got := o.hits.Load(); got != wantHits {
				t.Errorf("origin requests = %d, want %d", got, wantHits)
			}
			if tt.shared {
				for i, b := range bodies {
					if b != leader {
						t.Errorf("Fill %d got %q, want the shared page %q", i, b, leader)
					}
				}
				return
			}
			for i, b := range bodies { // each got the page fetched for its own request
				who := string(rune('a' + i))
				want := "page for "
				switch {
				case tt.cookie:
					want += "user=" + who
				case tt.vary != "":
					want += who
				}
				if b != want {
					t.Errorf("Fill %d got %q, want its own page %q", i, b, want)
				}
			}
		})
	}
}
