package main

// Every Redis deployment swrproxy supports, end to end: a single server, a Redis Cluster of 3
// masters with replicas, and a Sentinel-managed primary. The fleet features run on each (L2
// sharing, collapsing, invalidation with acknowledgements, warm start), and a failover (a cluster
// master or the Sentinel primary killed) costs clients no 5xx while invalidations resume within
// seconds.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/config"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testcerts"
	"github.com/swrproxy/swrproxy/tiers"
)

// topologyTests are the top-level tests of what instances share through Redis.
var topologyTests = []redistest.Case{
	{Name: "TwoInstancesShareOneRedis", Test: testTwoInstancesShareOneRedis},
	{Name: "ConcurrentMissesOverTwoInstancesMakeOneOriginRequest", Test: testConcurrentMissesOverTwoInstancesMakeOneOriginRequest},
	{Name: "InvalidationReachesEveryInstanceBeforeTheReply", Test: testInvalidationReachesEveryInstanceBeforeTheReply},
	{Name: "PrefixTagAndAllInvalidationsClearOnlyWhatTheySelect", Test: testPrefixTagAndAllInvalidationsClearOnlyWhatTheySelect},
	{Name: "AnInstanceStartedLaterServesTheFleetsHotKeysFromL1AtOnce", Test: testAnInstanceStartedLaterServesTheFleetsHotKeysFromL1AtOnce},
}

func TestTheFleetOnEveryRedisTopology(t *testing.T) {
	t.Parallel()
	redistest.OnEveryTopology(t, topologyTests)
}

// TestAFailoverCostsClientsNo5xx kills the primary that carries the invalidation channel's
// subscriptions (a cluster master and its slots, or the Sentinel primary) under load on two
// instances, and measures how long until the fleet works as before: the replica promoted, an
// invalidation through one instance acknowledged by both, an entry stored by one read from L2
// by the other. Throughout, every request is answered without a 5xx (L1, the breaker, the
// origin), and the fleet is whole again within seconds.
func TestAFailoverCostsClientsNo5xx(t *testing.T) {
	t.Parallel()
	for _, start := range []func(testing.TB) redistest.Topology{
		func(tb testing.TB) redistest.Topology { return redistest.StartCluster(tb) },
		func(tb testing.TB) redistest.Topology { return redistest.StartSentinel(tb) },
	} {
		topo := start(t)
		t.Run(topo.Name(), func(t *testing.T) { failover(t, topo) })
	}
}

// resumeWithin bounds how long after the kill the fleet must work as before: the promotion takes
// a few seconds (cluster-node-timeout and down-after-milliseconds are 1 s in these topologies;
// production's defaults are 15 s and 30 s, which add to every figure here).
const resumeWithin = 20 * time.Second

func failover(t *testing.T, topo redistest.Topology) {
	o := newVersionedOrigin(t)
	env := map[string]string{"SWR_REDIS_URL": topo.URL(), "SWR_REDIS_MASTER_NAME": topo.MasterName(), "SWR_REDIS_SENTINEL_PASSWORD": topo.SentinelPassword(),
		"SWR_INVALIDATE_SECRET": secret}
	insts := []*instance{startProxy(t, o.URL, env), startProxy(t, o.URL, env)}
	const keys = 50
	for i := range keys {
		expect(t, get(t, insts[0].URL+fmt.Sprintf("/k/%d", i)), 200, "MISS", fmt.Sprintf("/k/%d v1", i))
	}

	// Load: two clients per instance, cached keys and new ones (misses take the fetch lock and
	// write L2), until the fleet is whole again.
	var served, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	asked := o.hits.Load()
	for c := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				path := fmt.Sprintf("/k/%d", n%keys)
				if n%5 == 0 {
					path = fmt.Sprintf("/new/%d/%d", c, n)
				}
				r := do(http.MethodGet, insts[c%2].URL+path)
				served.Add(1)
				if r.StatusCode == 0 || r.StatusCode >= 500 {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s: %d %q", path, r.StatusCode, trim(r.Body)))
					mu.Unlock()
				}
			}
		})
	}

	killed := time.Now()
	victim, promoted := topo.FailPrimary(t, tiers.KeyPrefix+"invalidate")
	t.Logf("%s: killed %s; a replica took over after %v", topo.Name(), victim.Addr(), promoted.Round(time.Millisecond))

	// Invalidations resume: one through A, acknowledged by both instances, clears B's copy.
	var invalidated time.Duration
	for i := 0; ; i++ {
		if time.Since(killed) > resumeWithin {
			t.Fatalf("%s: no complete invalidation within %v of the kill", topo.Name(), resumeWithin)
		}
		key := fmt.Sprintf("/k/%d", i%keys)
		status, res := postJSON(t, insts[0].URL+"/_swr/invalidate", secret, `{"keys":["`+key+`"],"mode":"clear"}`)
		if status == 200 && res["complete"] == true && res["acknowledged"] == float64(2) {
			invalidated = time.Since(killed)
			break
		}
		time.Sleep(100 * time.Millisecond) // the next attempt; each is bounded by its own deadline
	}
	// Invalidation by prefix and by tag too (they read the {idx} and tag indexes).
	for _, body := range []string{`{"prefixes":["/k/"],"mode":"clear"}`, `{"tags":["all"],"mode":"clear"}`} {
		if status, res := postJSON(t, insts[0].URL+"/_swr/invalidate", secret, body); status != 200 || res["complete"] != true {
			t.Errorf("%s: %s after the failover: %d %v, want complete", topo.Name(), body, status, res)
		}
	}
	// L2 is shared again: an entry A stores is an L2 hit on B, without another origin request.
	var shared time.Duration
	for i := 0; ; i++ {
		if time.Since(killed) > resumeWithin {
			t.Fatalf("%s: no entry shared through L2 within %v of the kill", topo.Name(), resumeWithin)
		}
		path := fmt.Sprintf("/after/%d", i)
		get(t, insts[0].URL+path)
		if r := get(t, insts[1].URL+path); r.Header.Get("Cache-Status") == "swrproxy; hit; detail=l2" {
			shared = time.Since(killed)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopLoad()
	t.Logf("%s: invalidations complete again %v after the kill, L2 shared again after %v; %d requests served meanwhile (%d origin requests), %d with a 5xx or no answer",
		topo.Name(), invalidated.Round(time.Millisecond), shared.Round(time.Millisecond), served.Load(), o.hits.Load()-asked, failed.Load())
	if n := failed.Load(); n != 0 {
		t.Errorf("%s: %d of %d requests failed during the failover, want none: %q", topo.Name(), n, served.Load(), failures[:min(len(failures), 5)])
	}
}

// Redis over TLS with credentials (rediss://user:pass@…, its CA in SWR_REDIS_CA_FILE) carries
// the fleet as a plain one does; without the CA, the server's certificate is refused, and the
// instance serves from L1 and the origin alone, storing nothing in it.
func TestRedisOverTLSWithCredentialsCarriesTheFleet(t *testing.T) {
	t.Parallel()
	certs := testcerts.New(t)
	rs := redistest.StartTLS(t, certs)
	if !strings.HasPrefix(rs.URL(), "rediss://"+redistest.User+":") {
		t.Fatalf("URL %q, want rediss:// with the credentials", rs.URL())
	}
	o := newVersionedOrigin(t)
	env := map[string]string{"SWR_REDIS_URL": rs.URL(), "SWR_REDIS_CA_FILE": certs.CAFile}
	a, b := startProxy(t, o.URL, env), startProxy(t, o.URL, env)
	expect(t, get(t, a.URL+"/k/1"), 200, "MISS", "/k/1 v1")
	if r := get(t, b.URL+"/k/1"); r.Header.Get("Cache-Status") != "swrproxy; hit; detail=l2" {
		t.Errorf("B's answer %q, want an L2 hit of A's entry over TLS", r.Header.Get("Cache-Status"))
	}

	untrusting := startProxy(t, o.URL, map[string]string{"SWR_REDIS_URL": rs.URL()})
	expect(t, get(t, untrusting.URL+"/k/2"), 200, "MISS", "/k/2 v1")
	if r := get(t, untrusting.URL+"/_swr/readyz"); strings.Contains(r.Body, `"redis":"ok"`) {
		t.Errorf("readyz without the CA: %s, want Redis not reached", r.Body)
	}
	if r := get(t, b.URL+"/k/2"); r.Header.Get("X-Cache") != "MISS" {
		t.Errorf("an instance that cannot verify Redis stored /k/2 in it: B's answer is %s", r.Header.Get("X-Cache"))
	}
	if n := o.hits.Load(); n != 3 {
		t.Errorf("origin requests = %d, want 3 (/k/1 once, /k/2 by each instance)", n)
	}
}

// One node of a Redis Cluster named as a single server would answer, but refuse most keys
// (MOVED): start-up stops and says how to name a cluster. With ?cluster=true, that one seed is
// enough: two instances share L2 through the cluster it leads to.
func TestOneClusterSeedNeedsClusterTrue(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	seed := "redis://" + redistest.User + ":" + redistest.Password + "@" + c.Nodes[0].Addr()
	vars := map[string]string{"SWR_UPSTREAM": "http://127.0.0.1:1", "SWR_LISTEN": "127.0.0.1:0", "SWR_REDIS_URL": seed}
	cfg, err := config.LoadLookup(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = run(ctx, cfg, testLogger(t), func(string, string) { t.Error("swrproxy listened on one cluster node named as a single server") })
	if err == nil || !strings.Contains(err.Error(), "SWR_REDIS_URL") || !strings.Contains(err.Error(), "cluster=true") || strings.Contains(err.Error(), redistest.Password) {
		t.Errorf("start-up on one cluster node: %v, want an error naming SWR_REDIS_URL and ?cluster=true, without the password", err)
	}

	o := newVersionedOrigin(t)
	env := map[string]string{"SWR_REDIS_URL": seed + "?cluster=true"}
	a, b := startProxy(t, o.URL, env), startProxy(t, o.URL, env)
	for i := range 20 { // keys on every master
		path := fmt.Sprintf("/k/%d", i)
		expect(t, get(t, a.URL+path), 200, "MISS", path+" v1")
		if r := get(t, b.URL+path); r.Header.Get("Cache-Status") != "swrproxy; hit; detail=l2" {
			t.Errorf("%s on B: %q, want an L2 hit through the one seed with cluster=true", path, r.Header.Get("Cache-Status"))
		}
	}
}

// Sentinels with a password (requirepass) are asked with SWR_REDIS_SENTINEL_PASSWORD: with it
// two instances share the primary; without it the sentinels refuse, and nothing is stored.
func TestSentinelsWithAPasswordNeedSWR_REDIS_SENTINEL_PASSWORD(t *testing.T) {
	t.Parallel()
	set := redistest.StartSentinel(t)
	o := newVersionedOrigin(t)
	env := map[string]string{"SWR_REDIS_URL": set.URL(), "SWR_REDIS_MASTER_NAME": set.MasterName(),
		"SWR_REDIS_SENTINEL_PASSWORD": set.SentinelPassword()}
	a, b := startProxy(t, o.URL, env), startProxy(t, o.URL, env)
	expect(t, get(t, a.URL+"/k/1"), 200, "MISS", "/k/1 v1")
	if r := get(t, b.URL+"/k/1"); r.Header.Get("Cache-Status") != "swrproxy; hit; detail=l2" {
		t.Errorf("B's answer %q, want an L2 hit through the sentinels", r.Header.Get("Cache-Status"))
	}
	delete(env, "SWR_REDIS_SENTINEL_PASSWORD")
	without := startProxy(t, o.URL, env)
	expect(t, get(t, without.URL+"/k/2"), 200, "MISS", "/k/2 v1")
	if r := get(t, b.URL+"/k/2"); r.Header.Get("X-Cache") != "MISS" {
		t.Errorf("an instance without the sentinels' password stored /k/2: B's answer is %s", r.Header.Get("X-Cache"))
	}
}
