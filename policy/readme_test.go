package policy

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// readmeRules returns the rules file the README's "Policies" section shows.
func readmeRules(t *testing.T) *Rules {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Policies\n")
	_, block, ok2 := strings.Cut(section, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal(`README.md has no yaml block under "## Policies"`)
	}
	return mustParse(t, block)
}

func TestTheREADMEsRulesFileDoesWhatItsCommentsSay(t *testing.T) {
	rules := readmeRules(t)
	get := func(path, query string) *Rule {
		return rules.Match(Request{Method: []byte("GET"), Path: []byte(path), Query: []byte(query)})
	}
	prices := get("/api/prices/ALGO-USD", "")
	if prices == nil || prices.Name != "prices" {
		t.Fatalf("/api/prices/ALGO-USD matched %v, want the prices rule", prices)
	}
	if tags := prices.Tags("/api/prices/ALGO-USD"); !slices.Equal(tags, []string{"prices", "pair-ALGO-USD"}) {
		t.Errorf("tags %q, want prices and pair-ALGO-USD", tags)
	}
	a := string(prices.AppendKey(nil, []byte("/api/prices/ALGO-USD"), []byte("b=1&utm_source=x&a=2&_=3"), nil, nil))
	b := string(prices.AppendKey(nil, []byte("/api/prices/ALGO-USD"), []byte("a=2&b=1"), nil, nil))
	if a != b || a != "/api/prices/ALGO-USD?a=2&b=1" {
		t.Errorf("keys %q and %q, want one sorted key without the trackers", a, b)
	}
	if r := rules.Match(Request{Method: []byte("GET"), Path: []byte("/dash/x"), Header: header{"X-Tenant": []byte("acme")}}); r == nil || r.Name != "dashboards" {
		t.Errorf("/dash/x with X-Tenant matched %v, want dashboards", r)
	}
	if r := get("/account/me", ""); r == nil || !r.Bypass() {
		t.Errorf("/account/me matched %v, want the bypass rule", r)
	}
	if r := get("/other", ""); r == nil || r.Name != "everything-else" || r.DefaultTTL == nil {
		t.Errorf("/other matched %v, want everything-else with a default_ttl", r)
	}
	if w := rules.Warnings(); len(w) != 0 {
		t.Errorf("the README's rules file draws warnings: %q", w)
	}
}
