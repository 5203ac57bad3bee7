package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/config"
	"github.com/swrproxy/swrproxy/internal/certpool"
	"github.com/swrproxy/swrproxy/internal/redisconn"
)

// newRedis returns the L2 client (a single server, a Redis Cluster or a Sentinel-managed primary,
// redisconn), or nil when SWR_REDIS_URL is empty. SWR_REDIS_CA_FILE adds CAs for rediss://.
func newRedis(cfg config.Config) (redis.UniversalClient, error) {
	t := cfg.Redis()
	if t.Kind == redisconn.None {
		return nil, nil
	}
	var roots *x509.CertPool
	if cfg.RedisCAFile != "" {
		var err error
		if roots, err = certpool.Load("SWR_REDIS_CA_FILE", cfg.RedisCAFile); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return t.Client(roots), nil
}

// checkRedis says at start-up what SWR_REDIS_URL was read as, and whether it answers: a master
// name for a server that is no sentinel fails the ping, which a warning says (Redis may just be
// down: the instance serves from L1 until it answers). One node of a Redis Cluster addressed as a
// single server answers, but most keys would be refused (MOVED): that stops start-up.
func checkRedis(ctx context.Context, cfg config.Config, rdb redis.UniversalClient, log *slog.Logger) error {
	t := cfg.Redis()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		log.Warn("redis does not answer at start: serving from L1 until it does", "redis", t.String(), "err", err)
		return nil
	}
	if info, err := rdb.Info(ctx, "cluster").Result(); t.Kind == redisconn.Single && err == nil && strings.Contains(info, "cluster_enabled:1") {
		return fmt.Errorf("config: SWR_REDIS_URL=%q names one node of a Redis Cluster as a single server, whose keys live on every master: list several seeds, or add ?cluster=true to the URL", cfg.Redis().Addrs[0])
	}
	log.Info("redis", "redis", t.String())
	return nil
}

func init() {
	// go-redis logs dial failures on its own; the breaker already reports outages once.
	redis.SetLogger(quietRedisLogger{})
}

type quietRedisLogger struct{}

func (quietRedisLogger) Printf(context.Context, string, ...any) {}
