package redistest

import (
	"context"
	"crypto/x509"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/internal/redisconn"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

// The ACL user every Cluster and Sentinel topology requires (the default user is off), so that
// a test on them proves swrproxy sends the credentials of SWR_REDIS_URL to every node.
const (
	User     = "swr"
	Password = "swr-test-password"
)

// dataArgs make User the only user of a data node and of its replication link, and let a replica
// sync at once (Redis waits 5 s by default for more replicas to share a diskless transfer).
var dataArgs = []string{"--user", "default", "off", "--user", User, "on", ">" + Password, "~*", "&*", "+@all",
	"--masteruser", User, "--masterauth", Password, "--repl-diskless-sync-delay", "0"}

// Cluster is a Redis Cluster of 3 masters with one replica each, on free 127.0.0.1 ports, owned
// by one test (or one table of a package, see OnEveryTopology). Nodes need User and Password.
type Cluster struct {
	tb    testing.TB
	Nodes []*Server
}

// StartCluster starts the 6 nodes (cluster-node-timeout 1 s, so a failover takes a few
// seconds), joins them with redis-cli --cluster create … --cluster-replicas 1, and waits until
// every node reports cluster_state:ok and every replica is in sync. It stops them (by process
// id) when the test ends.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Fatal("redis-cli not found: run `make test` (it installs it) or `apt-get install redis-tools`")
	}
	c := &Cluster{tb: tb}
	var addrs []string
	for range 6 {
		dir := tb.TempDir()
		s := &Server{tb: tb, dir: dir, Port: testenv.FreePort(tb), username: User, password: Password}
		s.args = append([]string{"--cluster-enabled", "yes", "--cluster-config-file", dir + "/nodes.conf",
			"--cluster-port", strconv.Itoa(testenv.FreePort(tb)), "--cluster-node-timeout", "1000",
			"--cluster-replica-validity-factor", "0"}, dataArgs...)
		s.Restart()
		tb.Cleanup(s.Stop)
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr())
	}
	args := append([]string{"--user", User, "--pass", Password, "--no-auth-warning", "--cluster", "create"}, addrs...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, append(args, "--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.waitHealthy(30 * time.Second)
	return c
}

// node is a plain client of one node.
func (c *Cluster) node(s *Server) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr(), Username: User, Password: Password, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second})
}

// waitHealthy waits until every running node says cluster_state:ok, knows every running node, and
// every running replica's link to its master is up.
func (c *Cluster) waitHealthy(limit time.Duration) {
	c.tb.Helper()
	testenv.WaitFor(c.tb, limit, "the cluster to be ok with its replicas in sync", func() bool {
		running := 0
		for _, s := range c.Nodes {
			if s.running() {
				running++
			}
		}
		for _, s := range c.Nodes {
			if !s.running() {
				continue
			}
			rdb := c.node(s)
			info, err := rdb.ClusterInfo(context.Background()).Result()
			repl, err2 := rdb.Info(context.Background(), "replication").Result()
			rdb.Close()
			if err != nil || err2 != nil || !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))) {
				return false
			}
			if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
				return false
			}
		}
		return running > 0
	})
}

// Name is "cluster".
func (c *Cluster) Name() string { return "cluster" }

// URL is the cluster's SWR_REDIS_URL: the credentials and every node as a seed.
func (c *Cluster) URL() string { return seedsURL(c.Nodes) }

// seedsURL is the redis:// URL form of several addresses (go-redis' ParseClusterURL form), with
// User and Password: the first server's as the host, the others' as addr= parameters.
func seedsURL(servers []*Server) string {
	u := "redis://" + User + ":" + Password + "@" + servers[0].Addr()
	for i, s := range servers[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + s.Addr()
	}
	return u
}

// MasterName is "": a cluster has no Sentinel.
func (c *Cluster) MasterName() string { return "" }

// SentinelPassword is "": a cluster has no Sentinel.
func (c *Cluster) SentinelPassword() string { return "" }

// Connect returns production's client on the cluster, closed when the test ends.
func (c *Cluster) Connect(tb testing.TB) redis.UniversalClient { return client(tb, c) }

// masters are the running nodes that serve slots as masters.
func (c *Cluster) masters() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if !s.running() {
			continue
		}
		rdb := c.node(s)
		role, err := rdb.Do(context.Background(), "ROLE").Slice()
		rdb.Close()
		if err == nil && len(role) > 0 && role[0] == "master" {
			out = append(out, s)
		}
	}
	return out
}

// Flush empties every master (their replicas follow).
func (c *Cluster) Flush(tb testing.TB) {
	tb.Helper()
	for _, s := range c.masters() {
		rdb := c.node(s)
		err := rdb.FlushAll(context.Background()).Err()
		rdb.Close()
		if err != nil {
			tb.Fatalf("FLUSHALL on %s: %v", s.Addr(), err)
		}
	}
}

// FailPrimary kills (SIGKILL) the master that holds key's slot and waits until its replica
// has taken over and the cluster is ok again. It returns the killed node and how long the
// promotion took after the kill.
func (c *Cluster) FailPrimary(tb testing.TB, key string) (*Server, time.Duration) {
	tb.Helper()
	victim := c.masterOf(tb, key)
	start := time.Now()
	victim.Stop()
	testenv.WaitFor(tb, 30*time.Second, "a replica to take over "+victim.Addr()+"'s slots", func() bool {
		m := c.masterOfOrNil(key)
		return m != nil && m != victim
	})
	took := time.Since(start)
	c.waitHealthyWithout(victim)
	return victim, took
}

func (c *Cluster) waitHealthyWithout(gone *Server) {
	c.tb.Helper()
	testenv.WaitFor(c.tb, 30*time.Second, "the cluster to be ok without "+gone.Addr(), func() bool {
		for _, s := range c.Nodes {
			if !s.running() {
				continue
			}
			rdb := c.node(s)
			info, err := rdb.ClusterInfo(context.Background()).Result()
			rdb.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
		}
		return true
	})
}

func (c *Cluster) masterOf(tb testing.TB, key string) *Server {
	tb.Helper()
	m := c.masterOfOrNil(key)
	if m == nil {
		tb.Fatalf("no running master holds the slot of %q", key)
	}
	return m
}

// masterOfOrNil is the running node a running node's CLUSTER SHARDS names master of key's slot.
func (c *Cluster) masterOfOrNil(key string) *Server {
	for _, s := range c.Nodes {
		if !s.running() {
			continue
		}
		rdb := c.node(s)
		slot, err := rdb.ClusterKeySlot(context.Background(), key).Result()
		slots, err2 := rdb.ClusterSlots(context.Background()).Result()
		rdb.Close()
		if err != nil || err2 != nil {
			continue
		}
		for _, r := range slots {
			if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 {
				i := slices.IndexFunc(c.Nodes, func(n *Server) bool { return n.Addr() == r.Nodes[0].Addr })
				if i >= 0 && c.Nodes[i].running() {
					return c.Nodes[i]
				}
			}
		}
		return nil
	}
	return nil
}

// client is production's client for t, closed when the test ends. A server with TLS is trusted
// through its own CA (as SWR_REDIS_CA_FILE would make it).
func client(tb testing.TB, t Topology) redis.UniversalClient {
	tb.Helper()
	target, err := redisconn.Parse(t.URL(), t.MasterName())
	if err != nil {
		tb.Fatalf("redisconn.Parse(%s): %v", t.Name(), err)
	}
	target.SentinelPassword = t.SentinelPassword()
	var roots *x509.CertPool
	if s, ok := t.(*Server); ok && s.certs != nil {
		roots = s.certs.CAPool
	}
	rdb := target.Client(roots)
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// running reports whether the server process is up.
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}
