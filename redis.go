package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/config"
)

// newRedis returns the L2 client, or nil when SWR_REDIS_URL is empty. Timeouts are short on
// purpose: a slow Redis must cost a request at most one of them before the breaker opens. Nothing
// is retried, neither commands nor dials: a dead Redis fails a call at once, a stalled one after
// one deadline, and a call whose outcome is unknown (a SET NX that may have run) is never sent
// twice behind the caller's back; the breaker decides when to try again.
func newRedis(cfg config.Config) (redis.UniversalClient, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	const (
		dial = 500 * time.Millisecond
		rw   = 250 * time.Millisecond
		pool = 300 * time.Millisecond
		// go-redis reads MaxRetries -1 as "none" (0 as 3), but DialerRetries is the number of
		// dial attempts and reads 0 or less as 5 (100 ms apart): 1 is a single dial.
		retries = -1
		dials   = 1
	)
	if addrs := cfg.RedisAddrs(); len(addrs) > 1 {
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: addrs, DialTimeout: dial, ReadTimeout: rw, WriteTimeout: rw, PoolTimeout: pool,
			MaxRetries: retries, DialerRetries: dials, ContextTimeoutEnabled: true,
			// The cluster client retries failed commands on other nodes within MaxRedirects;
			// -1 turns that off too. A MOVED/ASK answer (resharding, failover) then fails its
			// one call and reloads the slot map; the map is also reloaded every 5 s of traffic
			// (instead of 60 s), so a failed-over master is not dialled for long.
			MaxRedirects: -1, ClusterStateReloadInterval: 5 * time.Second,
		}), nil
	} else if len(addrs) == 1 {
		return redis.NewClient(&redis.Options{
			Addr: addrs[0], DialTimeout: dial, ReadTimeout: rw, WriteTimeout: rw, PoolTimeout: pool,
			MaxRetries: retries, DialerRetries: dials, ContextTimeoutEnabled: true,
		}), nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("config: SWR_REDIS_URL: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = dial, rw, rw, pool
	opts.MaxRetries, opts.DialerRetries, opts.ContextTimeoutEnabled = retries, dials, true
	if opts.TLSConfig != nil && opts.TLSConfig.MinVersion == 0 {
		opts.TLSConfig.MinVersion = tls.VersionTLS12
	}
	return redis.NewClient(opts), nil
}

func init() {
	// go-redis logs dial failures on its own; the breaker already reports outages once.
	redis.SetLogger(quietRedisLogger{})
}

type quietRedisLogger struct{}

func (quietRedisLogger) Printf(context.Context, string, ...any) {}
