package refresh

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/policy"
)

// holder loads rules as SWR_POLICY_FILE would.
func holder(t *testing.T, rules string) *policy.Holder {
	t.Helper()
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := policy.NewHolder(context.Background(), policy.Source{File: file}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A 304 without Surrogate-Key leaves the entry's tags as they were (RFC 9111 §4.3.4 updates only
// the fields the 304 carries): a purge by tag must still find a revalidated entry.
func TestA304KeepsTheEntrysTags(t *testing.T) {
	o, _ := revalidatingOrigin(t, "max-age=120")
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)
	old := staleEntry("/r")
	old.Tags = []string{"asset-1", "prices"}
	if err := s.Set(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	r := request("/r")
	r.Stale = old
	res, err := f.Fill(t.Context(), r)
	if err != nil || !res.Revalidated {
		t.Fatalf("Fill = %+v, %v; want a revalidation", res, err)
	}
	if !slices.Equal(res.Entry.Tags, old.Tags) {
		t.Errorf("renewed entry tags %q, want %q", res.Entry.Tags, old.Tags)
	}
	if keys := s.L1KeysWithTag("prices"); !slices.Equal(keys, []string{"/r"}) {
		t.Errorf("L1 keys with tag prices: %q", keys)
	}
}

func TestARulesResponseEditsGoBeforeTheStorageDecision(t *testing.T) {
	o := newTestOrigin(t, false, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Cache-Control", "max-age=0, no-cache")
		w.Header().Set("Set-Cookie", "tracking=1")
		w.Header().Set("Server", "origin")
		io.WriteString(w, "body")
	})
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)
	f.Policy = holder(t, `
rules:
  - ttl: 30s
    stale_if_error: 0s
    response_headers: {remove: [Set-Cookie, Server, Cache-Control], set: {X-Policy: yes}}
    tags: ["seg-{1}", "all"]
`)
	r := request("/assets/logo.png")
	r.Rule, r.Matched = f.Policy.Current().Match(policy.Request{Method: []byte("GET"), Path: []byte(r.URI)}), true
	res, err := f.Fill(t.Context(), r)
	if err != nil || res.Entry == nil || res.NotStored != "" {
		t.Fatalf("Fill = %+v, %v; want a stored entry (Set-Cookie and no-cache removed by the rule)", res, err)
	}
	e := res.Entry
	if e.Fresh != 30*time.Second || e.StaleIfError != 0 {
		t.Errorf("Fresh %v, StaleIfError %v; want the rule's 30s and 0s", e.Fresh, e.StaleIfError)
	}
	if fieldValues(e, "Set-Cookie") != nil || fieldValues(e, "Server") != nil || !slices.Equal(fieldValues(e, "X-Policy"), []string{"yes"}) {
		t.Errorf("stored fields %v", e.Header)
	}
	if !slices.Equal(e.Tags, []string{"seg-assets", "all"}) {
		t.Errorf("tags %q", e.Tags)
	}
}

func TestARuleSayingCacheFalseKeepsAResponseOutOfTheStore(t *testing.T) {
	o := newTestOrigin(t, false, cacheable)
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)
	f.Policy = holder(t, "rules:\n  - cache: false\n")
	r := request("/x")
	r.Rule, r.Matched = f.Policy.Current().Match(policy.Request{Method: []byte("GET"), Path: []byte("/x")}), true
	res, err := f.Fill(t.Context(), r)
	if err != nil || res.Pass == nil || res.NotStored != reasonPolicy {
		t.Fatalf("Fill = %+v, %v; want a Pass not stored for reason policy", res, err)
	}
	res.Pass.Body.Close()
	if s.Peek("/x") != nil {
		t.Error("stored")
	}
}

// A background request rebuilt from a key is matched by the Filler itself: the rule's request
// edits and freshness apply to refreshes as to client fills.
func TestABackgroundRefreshIsMatchedAgainstTheRules(t *testing.T) {
	var mu sync.Mutex
	var seen http.Header
	o := newTestOrigin(t, false, func(w http.ResponseWriter, r *http.Request, n int64) {
		mu.Lock()
		seen = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=5")
		io.WriteString(w, "v")
	})
	s := newTestStore(t, nil)
	f := newTestFiller(t, s, o)
	f.Policy = holder(t, `
rules:
  - match: {path: "/api/*", query: {pair: "*"}}
    ttl: 1m
    request_headers: {set: {X-Via: swrproxy}}
`)
	old := staleEntry("/api/prices?pair=A")
	old.Key = "/api/prices?pair=A"
	e, err := f.background(t.Context(), requestFor(old, 0))
	if err != nil || e == nil {
		t.Fatalf("background = %v, %v", e, err)
	}
	if e.Fresh != time.Minute {
		t.Errorf("Fresh %v, want the rule's 1m", e.Fresh)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen.Get("X-Via") != "swrproxy" {
		t.Errorf("the refresh sent %v, without the rule's X-Via", seen)
	}
}
