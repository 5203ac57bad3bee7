package upstream

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRoundRobinSpreadsEvenlyOverThreeBackends(t *testing.T) {
	bs := startBackends(t, 3)
	c := newPool(t, Options{}, urls(bs...)...)
	for range 300 {
		mustFetch(t, c, "", "/x")
	}
	for _, b := range bs {
		if n := b.hits.Load(); n != 100 {
			t.Errorf("backend %s: %d of 300 requests, want 100", b.name, n)
		}
	}
	if st := c.Stats(); st.Success != 300 || st.Failed != 0 || st.Backends != 3 || st.Up != 3 {
		t.Errorf("Stats = %+v, want 300 successes of 3 backends up", st)
	}
}

// With a backend down, its share must be spread over the others, not handed to the one after
// it in the list (which would then take twice the load of the rest).
func TestTheShareOfADownBackendIsSpreadEvenly(t *testing.T) {
	for _, balance := range []string{BalanceRoundRobin, BalanceLeastConn} {
		t.Run(balance, func(t *testing.T) {
			bs := startBackends(t, 4)
			c := newPool(t, Options{Balance: balance}, urls(bs...)...)
			markDown(t, c, c.backends()[1].id) // the second in the pool's order
			for range 300 {
				mustFetch(t, c, "", "/x")
			}
			for _, b := range bs {
				n := b.hits.Load()
				if c.member(b.url).up.Load() && n != 100 {
					t.Errorf("backend %s (up): %d of 300 requests, want 100", b.name, n)
				}
				if !c.member(b.url).up.Load() && n != 0 {
					t.Errorf("backend %s (down): %d requests, want 0", b.name, n)
				}
			}
		})
	}
}

func TestLeastConnPrefersTheBackendWithFewerInFlight(t *testing.T) {
	bs := startBackends(t, 3)
	c := newPool(t, Options{Balance: BalanceLeastConn}, urls(bs...)...)
	first := open(t, c, "", "/hold")
	second := open(t, c, "", "/hold")
	busy := []string{first.Header.Get("X-Backend"), second.Header.Get("X-Backend")}
	if busy[0] == busy[1] {
		t.Fatalf("two requests held open on %s, want them on two backends", busy[0])
	}
	for range 20 {
		if got := mustFetch(t, c, "", "/x"); slices.Contains(busy, got) {
			t.Fatalf("a request went to %s, which holds one in flight, while another backend held none", got)
		}
	}
	for _, b := range bs {
		want := int64(0)
		if slices.Contains(busy, b.name) {
			want = 1
		}
		if s := server(t, c, b.url); s.InFlight != want {
			t.Errorf("%s: in flight = %d, want %d", b.name, s.InFlight, want)
		}
	}
	first.Body.Close()
	second.Body.Close()
	idle(t, c)
}

// keys are n distinct cache keys.
func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("GET /item/%d?v=%d", i, i*7)
	}
	return out
}

// placement maps each key to the id of its key_hash backend in c.
func placement(c *Client, ks []string) map[string]string {
	out := make(map[string]string, len(ks))
	for _, k := range ks {
		if b := c.pick(k, nil); b != nil {
			out[k] = b.id
		}
	}
	return out
}

func TestKeyHashSendsAKeyToTheSameBackendAlways(t *testing.T) {
	bs := startBackends(t, 3)
	c := newPool(t, Options{Balance: BalanceKeyHash}, urls(bs...)...)
	seen := map[string]bool{}
	for _, k := range keys(60) {
		first := mustFetch(t, c, k, "/x")
		seen[first] = true
		for range 3 {
			if got := mustFetch(t, c, k, "/x"); got != first {
				t.Fatalf("key %q went to %s, then to %s", k, first, got)
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("60 keys went to %d backends, want all 3", len(seen))
	}
	// Without a key, the request target is the key.
	first := mustFetch(t, c, "", "/target")
	for range 5 {
		if got := mustFetch(t, c, "", "/target"); got != first {
			t.Fatalf("GET /target went to %s, then to %s", first, got)
		}
	}
	if got := mustFetch(t, c, "/target", "/other"); got != first {
		t.Errorf("key /target went to %s, want %s, where GET /target goes", got, first)
	}
}

func TestKeyHashSpreadsKeysOverEveryBackend(t *testing.T) {
	bs := startBackends(t, 3)
	c := newPool(t, Options{Balance: BalanceKeyHash}, urls(bs...)...)
	ks := keys(3000)
	count := map[string]int{}
	for _, id := range placement(c, ks) {
		count[id]++
	}
	for _, b := range bs {
		if n := count[b.url]; n < 600 || n > 1410 {
			t.Errorf("%s holds %d of 3000 keys (%.1f%%), want 20%%–47%%", b.url, n, float64(n)/30)
		}
	}
}

func TestRemovingABackendMovesOnlyItsKeys(t *testing.T) {
	bs := startBackends(t, 3)
	c := newPool(t, Options{Balance: BalanceKeyHash}, urls(bs...)...)
	ks := keys(3000)
	before := placement(c, ks)
	gone := bs[1].url
	if _, err := c.Remove(t.Context(), gone); err != nil {
		t.Fatalf("Remove(%s): %v", gone, err)
	}
	after := placement(c, ks)
	moved := map[string]int{}
	for _, k := range ks {
		switch {
		case before[k] != gone && after[k] != before[k]:
			t.Fatalf("key %q moved from %s to %s, though its backend stayed", k, before[k], after[k])
		case before[k] == gone:
			moved[after[k]]++
		}
	}
	if len(moved) != 2 || moved[gone] != 0 {
		t.Errorf("the removed backend's keys went to %v, want both others", moved)
	}
	// A backend that is down moves its keys the same way, and gets them back when it is up.
	markDown(t, c, bs[0].url)
	for _, k := range ks {
		if b := c.pick(k, nil); after[k] != bs[0].url && b.id != after[k] {
			t.Fatalf("key %q moved from %s to %s when another backend went down", k, after[k], b.id)
		}
	}
	for range c.health.Rise {
		c.passed(c.member(bs[0].url), time.Now())
	}
	if got := placement(c, ks); !mapsEqual(got, after) {
		t.Error("the keys did not come back to the backend that came back up")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Two instances of the fleet, listing the same backends in different orders, send every key
// to the same backend: key_hash is what makes their caches of one key share one origin.
func TestTwoInstancesAgreeOnEveryKey(t *testing.T) {
	bs := startBackends(t, 3)
	a := newPool(t, Options{Balance: BalanceKeyHash}, urls(bs...)...)
	b := newPool(t, Options{Balance: BalanceKeyHash}, bs[2].url, bs[0].url+"/", strings.ToUpper(bs[1].url[:4])+bs[1].url[4:])
	ks := keys(3000)
	pa, pb := placement(a, ks), placement(b, ks)
	for _, k := range ks {
		if pa[k] != pb[k] {
			t.Fatalf("key %q: instance a sends it to %s, instance b to %s", k, pa[k], pb[k])
		}
	}
	for _, k := range ks[:30] {
		if ga, gb := mustFetch(t, a, k, "/x"), mustFetch(t, b, k, "/x"); ga != gb {
			t.Fatalf("key %q: instance a got it from %s, instance b from %s", k, ga, gb)
		}
	}
}

func TestOnlyBackendsThatAreUpArePicked(t *testing.T) {
	for _, balance := range []string{BalanceRoundRobin, BalanceLeastConn, BalanceKeyHash} {
		t.Run(balance, func(t *testing.T) {
			bs := startBackends(t, 3)
			c := newPool(t, Options{Balance: balance}, urls(bs...)...)
			markDown(t, c, bs[1].url)
			for i := range 60 {
				if got := mustFetch(t, c, strconv.Itoa(i), "/x"); got == bs[1].name {
					t.Fatalf("request %d went to %s, which is down", i, got)
				}
			}
			if bs[0].hits.Load() == 0 || bs[2].hits.Load() == 0 {
				t.Errorf("hits = %d, %d; want both backends up to get some", bs[0].hits.Load(), bs[2].hits.Load())
			}
		})
	}
}

func TestPickingABackendDoesNotAllocate(t *testing.T) {
	for _, balance := range []string{BalanceRoundRobin, BalanceLeastConn, BalanceKeyHash} {
		c := newPool(t, Options{Balance: balance}, "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
		markDown(t, c, "http://127.0.0.1:2")
		if n := testing.AllocsPerRun(100, func() { c.pick("/k", nil) }); n != 0 {
			t.Errorf("%s: pick allocates %v times, want 0", balance, n)
		}
	}
}
