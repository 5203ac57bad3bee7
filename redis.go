package main

import (
	"context"
	"crypto/x509"
	"fmt"

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

func init() {
	// go-redis logs dial failures on its own; the breaker already reports outages once.
	redis.SetLogger(quietRedisLogger{})
}

type quietRedisLogger struct{}

func (quietRedisLogger) Printf(context.Context, string, ...any) {}
