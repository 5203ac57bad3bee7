package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/internal/testenv"
)

const (
	// MasterName is the name the sentinels of StartSentinel monitor the primary under.
	MasterName = "swr-primary"
	// SentinelPassword is the password the sentinels require (requirepass), as
	// SWR_REDIS_SENTINEL_PASSWORD gives it.
	SentinelPassword = "swr-sentinel-password"
)

// SentinelSet is a primary, its replica and three sentinels (quorum 2) on free 127.0.0.1 ports,
// owned by one test. The data nodes need User and Password; the sentinels none.
type SentinelSet struct {
	tb        testing.TB
	Data      []*Server // the primary first, as started; FailPrimary changes which is primary
	Sentinels []*Server
}

// StartSentinel starts the set and waits until every sentinel knows the replica and the other
// sentinels, and the replica is in sync (down-after-milliseconds 1 s, so a failover takes a few
// seconds). It stops them (by process id) when the test ends.
func StartSentinel(tb testing.TB) *SentinelSet {
	tb.Helper()
	set := &SentinelSet{tb: tb}
	primary := &Server{tb: tb, dir: tb.TempDir(), Port: testenv.FreePort(tb), username: User, password: Password, args: dataArgs}
	primary.Restart()
	tb.Cleanup(primary.Stop)
	replica := &Server{tb: tb, dir: tb.TempDir(), Port: testenv.FreePort(tb), username: User, password: Password,
		args: append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.Port)}, dataArgs...)}
	replica.Restart()
	tb.Cleanup(replica.Stop)
	set.Data = []*Server{primary, replica}
	for range 3 {
		dir := tb.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("sentinel resolve-hostnames no\nsentinel monitor %[1]s 127.0.0.1 %[2]d 2\n"+
			"sentinel down-after-milliseconds %[1]s 1000\nsentinel failover-timeout %[1]s 5000\n"+
			"sentinel parallel-syncs %[1]s 1\nsentinel auth-user %[1]s %[3]s\nsentinel auth-pass %[1]s %[4]s\n"+
			"requirepass %[5]s\nsentinel sentinel-pass %[5]s\n",
			MasterName, primary.Port, User, Password, SentinelPassword)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			tb.Fatal(err)
		}
		s := &Server{tb: tb, dir: dir, Port: testenv.FreePort(tb), conf: conf, args: []string{"--sentinel"}, password: SentinelPassword}
		s.Restart()
		tb.Cleanup(s.Stop)
		set.Sentinels = append(set.Sentinels, s)
	}
	testenv.WaitFor(tb, 30*time.Second, "the sentinels to know the replica and each other", func() bool {
		for _, s := range set.Sentinels {
			rdb := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), Password: SentinelPassword, MaxRetries: -1})
			replicas, err := rdb.Replicas(context.Background(), MasterName).Result()
			sentinels, err2 := rdb.Sentinels(context.Background(), MasterName).Result()
			rdb.Close()
			if err != nil || err2 != nil || len(replicas) < 1 || len(sentinels) < 2 {
				return false
			}
		}
		return set.replicaInSync(replica)
	})
	return set
}

func (set *SentinelSet) data(s *Server) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr(), Username: User, Password: Password, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second})
}

func (set *SentinelSet) replicaInSync(s *Server) bool {
	rdb := set.data(s)
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "replication").Result()
	return err == nil && strings.Contains(info, "master_link_status:up")
}

// Name is "sentinel".
func (set *SentinelSet) Name() string { return "sentinel" }

// URL lists the sentinels, with the data nodes' credentials.
func (set *SentinelSet) URL() string { return seedsURL(set.Sentinels) }

// MasterName is the monitored primary's name.
func (set *SentinelSet) MasterName() string { return MasterName }

// SentinelPassword is the password the sentinels require.
func (set *SentinelSet) SentinelPassword() string { return SentinelPassword }

// Connect returns production's client on the set, closed when the test ends.
func (set *SentinelSet) Connect(tb testing.TB) redis.UniversalClient { return client(tb, set) }

// primary is the data node the sentinels name primary now.
func (set *SentinelSet) primary() *Server {
	for _, s := range set.Sentinels {
		if !s.running() {
			continue
		}
		rdb := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), Password: SentinelPassword, MaxRetries: -1})
		addr, err := rdb.GetMasterAddrByName(context.Background(), MasterName).Result()
		rdb.Close()
		if err != nil || len(addr) != 2 {
			continue
		}
		for _, d := range set.Data {
			if strconv.Itoa(d.Port) == addr[1] && d.running() {
				return d
			}
		}
		return nil
	}
	return nil
}

// Flush empties the primary (the replica follows).
func (set *SentinelSet) Flush(tb testing.TB) {
	tb.Helper()
	p := set.primary()
	if p == nil {
		tb.Fatal("the sentinels name no running primary")
	}
	rdb := set.data(p)
	defer rdb.Close()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		tb.Fatalf("FLUSHALL on %s: %v", p.Addr(), err)
	}
}

// FailPrimary kills (SIGKILL) the primary and waits until the sentinels promoted the replica and
// it answers as primary. key is not used: there is one primary.
func (set *SentinelSet) FailPrimary(tb testing.TB, _ string) (*Server, time.Duration) {
	tb.Helper()
	victim := set.primary()
	if victim == nil {
		tb.Fatal("the sentinels name no running primary")
	}
	start := time.Now()
	victim.Stop()
	testenv.WaitFor(tb, 30*time.Second, "the sentinels to promote the replica", func() bool {
		p := set.primary()
		if p == nil || p == victim {
			return false
		}
		rdb := set.data(p)
		defer rdb.Close()
		role, err := rdb.Do(context.Background(), "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	})
	return victim, time.Since(start)
}
