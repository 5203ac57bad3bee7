package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Topology is a running Redis deployment that a test points swrproxy at: one server, a Cluster
// or a Sentinel-managed primary. Tests that must hold on each take a table of them (Topologies).
type Topology interface {
	Name() string       // "single", "cluster", "sentinel"
	URL() string        // its SWR_REDIS_URL
	MasterName() string // its SWR_REDIS_MASTER_NAME ("" but for Sentinel)
	// SentinelPassword is its SWR_REDIS_SENTINEL_PASSWORD ("" but for Sentinel).
	SentinelPassword() string
	// Connect returns production's client on it (redisconn), closed when the test ends.
	Connect(tb testing.TB) redis.UniversalClient
	// Flush empties every primary.
	Flush(tb testing.TB)
	// FailPrimary kills the primary that holds key and waits until a replica took over; it
	// returns the killed server and how long the takeover took. A single server has no replica:
	// it fails the test.
	FailPrimary(tb testing.TB, key string) (*Server, time.Duration)
}

// Topologies starts one of each topology for tb: a server, a Cluster (3 masters, 3 replicas)
// and a Sentinel set (a primary, a replica, 3 sentinels), for a table of subtests.
func Topologies(tb testing.TB) []Topology {
	tb.Helper()
	return []Topology{Start(tb), StartCluster(tb), StartSentinel(tb)}
}

// Name is "single".
func (s *Server) Name() string { return "single" }

// MasterName is "".
func (s *Server) MasterName() string { return "" }

// SentinelPassword is "".
func (s *Server) SentinelPassword() string { return "" }

// Connect returns production's client on the server, closed when the test ends.
func (s *Server) Connect(tb testing.TB) redis.UniversalClient { return client(tb, s) }

// Flush empties the server.
func (s *Server) Flush(tb testing.TB) {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: s.username, Password: s.password, TLSConfig: s.clientTLS(), MaxRetries: -1})
	defer rdb.Close()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		tb.Fatalf("FLUSHALL on %s: %v", s.Addr(), err)
	}
}

// FailPrimary fails the test: a single server has no replica to take over.
func (s *Server) FailPrimary(tb testing.TB, _ string) (*Server, time.Duration) {
	tb.Helper()
	tb.Fatal("a single Redis server has no replica to fail over to")
	return nil, 0
}

// Case is a test that takes the topology it runs on.
type Case struct {
	Name string
	Test func(*testing.T, Topology)
}

// OnEveryTopology runs every case on a single server, a Redis Cluster (3 masters with replicas)
// and a Sentinel-managed primary: one of each for the calling test (a package's table shares
// them, since a cluster takes seconds to form), emptied before every case. Cases run one after
// another: they share the topologies.
func OnEveryTopology(t *testing.T, cases []Case) {
	t.Helper()
	for _, topo := range Topologies(t) {
		t.Run(topo.Name(), func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.Name, func(t *testing.T) {
					topo.Flush(t)
					c.Test(t, topo)
				})
			}
		})
	}
}
