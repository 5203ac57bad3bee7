package refresh

import (
	"io"
	"net/http"
	"testing"
)

// Interim responses (RFC 9110 §15.2: 102 Processing, 103 Early Hints) are never stored or
// reused (RFC 9111 §3): the origin client (net/http) reads them itself, so a fill stores the
// final 200, with its own fields only, none of the 103's.
func TestAnInterimResponseIsNeverStored(t *testing.T) {
	for _, status := range []int{http.StatusProcessing, http.StatusEarlyHints} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			o := newTestOrigin(t, false, func(w http.ResponseWriter, _ *http.Request, _ int64) {
				w.Header().Set("Link", "</style.css>; rel=preload; as=style")
				w.Header().Set("X-Interim", "yes")
				w.WriteHeader(status)
				w.Header().Del("Link")
				w.Header().Del("X-Interim")
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, "final")
			})
			s := newTestStore(t, nil)
			f := newTestFiller(t, s, o)

			res, err := f.Fill(t.Context(), request("/hints"))
			if err != nil || res.Entry == nil {
				t.Fatalf("Fill = %+v, %v; want the stored 200", res, err)
			}
			e := variant(s, "/hints")
			if e != res.Entry || e.Status != http.StatusOK || string(e.Body) != "final" {
				t.Fatalf("stored %+v, want the final 200 with body %q", e, "final")
			}
			if got := append(fieldValues(e, "Link"), fieldValues(e, "X-Interim")...); len(got) != 0 {
				t.Errorf("stored entry has the interim response's fields %q", got)
			}
		})
	}
}
