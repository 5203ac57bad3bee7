package refresh

import (
	"net/http"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/tiers"
)

// TestA304RenewsTheStoredDate: the stored Date is what clients see next to Age (RFC 9110
// §6.6.1), so a renewal updates it (RFC 9111 §4.3.4): to the 304's Date, or, for a 304 without
// one, to the time swrproxy received it. Before, a 304 without Date left the old Date beside an
// Age restarted at zero.
func TestA304RenewsTheStoredDate(t *testing.T) {
	const originDate = "Tue, 01 Dec 2026 10:00:00 GMT"
	for _, withDate := range []bool{true, false} {
		o := newTestOrigin(t, false, func(w http.ResponseWriter, _ *http.Request, _ int64) {
			w.Header().Set("Cache-Control", "max-age=120")
			if withDate {
				w.Header().Set("Date", originDate)
			} else {
				w.Header()["Date"] = nil // net/http adds one otherwise
			}
			w.WriteHeader(http.StatusNotModified)
		})
		s := newTestStore(t, nil)
		f := newTestFiller(t, s, o)
		old := staleEntry("/d")
		old.Header = append(old.Header, tiers.Field{Name: "Date", Value: "Mon, 30 Nov 2026 08:00:00 GMT"})
		if err := s.Set(t.Context(), old); err != nil {
			t.Fatal(err)
		}
		r := request("/d")
		r.Stale = old
		before := time.Now().Add(-time.Second)
		res, err := f.Fill(t.Context(), r)
		if err != nil || !res.Revalidated {
			t.Fatalf("with Date %v: Fill = %+v, %v; want a renewal", withDate, res, err)
		}
		var dates []string
		for _, fl := range res.Entry.Header {
			if fl.Name == "Date" {
				dates = append(dates, fl.Value)
			}
		}
		if len(dates) != 1 {
			t.Fatalf("with Date %v: renewed entry has Date fields %q, want one", withDate, dates)
		}
		if withDate {
			if dates[0] != originDate {
				t.Errorf("renewed Date = %q, want the 304's %q", dates[0], originDate)
			}
			continue
		}
		d, err := http.ParseTime(dates[0])
		if err != nil || d.Before(before.Truncate(time.Second)) {
			t.Errorf("renewed Date = %q, want the time of the 304 (after %v)", dates[0], before.UTC().Format(http.TimeFormat))
		}
	}
}
