package refresh

import (
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/swrproxy/swrproxy/fill"
	"github.com/swrproxy/swrproxy/httpcache"
)

// A fill forwards only the fields it knows the key to vary on. When the origin turns out to vary
// on a field the client sent and the fill did not, Fill asks again with it, and stores the
// variant under what the origin was asked; the key's Vary is remembered, so the next cold miss
// of the key asks once.
func TestAFillAsksAgainWithAFieldTheOriginVariesOnAndRemembersIt(t *testing.T) {
	var seen sync.Map // request number → X-Tenant it carried
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, n int64) {
		seen.Store(n, r.Header.Get("X-Tenant"))
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "X-Tenant")
		io.WriteString(w, "tenant="+r.Header.Get("X-Tenant"))
	})
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)
	fillTenant := func() *fill.Result {
		t.Helper()
		r := request("/t")
		client := http.Header{"X-Tenant": {"acme"}}
		r.Value = func(n string) string { return httpcache.VaryValue(n, client.Get(n)) }
		r.Field = func(n string) string { return client.Get(n) }
		res, err := f.Fill(t.Context(), r)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := fillTenant()
	if got := string(res.Entry.Body); got != "tenant=acme" || o.hits.Load() != 2 {
		t.Fatalf("first fill: %q after %d origin requests, want tenant=acme after 2", got, o.hits.Load())
	}
	if v, _ := seen.Load(int64(1)); v != "" {
		t.Errorf("the first request carried X-Tenant %q: a fill must not forward an unkeyed field", v)
	}
	// The variant without the field was the origin's answer to a request without it: stored so.
	if e := s.Peek("/t").Variant(func(string) string { return "" }); e == nil || string(e.Body) != "tenant=" {
		t.Errorf("the variant for no X-Tenant = %+v, want the origin's answer without it", e)
	}
	if err := s.Delete(t.Context(), "/t"); err != nil { // gone, as when every variant expired
		t.Fatal(err)
	}
	fillTenant()
	if n := o.hits.Load(); n != 3 {
		t.Errorf("after the variants were gone, the next fill made %d origin requests, want 1 (the key's Vary is remembered)", n-2)
	}
}
