package upstream

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fleet's pool in Redis: one hash, field = backend URL, value = a JSON member; every change
// is published on poolChannel so that each instance reloads at once. The hash has no expiry: it
// is configuration. An instance that finds no hash (Redis is new, or restarted empty, or the
// hash was deleted) seeds it with the pool it holds.
const (
	poolKey     = "swr:pool:v1"
	poolChannel = "swr:pool:v1:changed"
	// poolPoll is how often an instance reloads the pool anyway, in case a message was lost.
	poolPoll = 5 * time.Second
	// poolTimeout bounds each Redis call of the pool.
	poolTimeout = time.Second
)

// member is one backend of the fleet's pool as Redis holds it.
type member struct {
	URL    string    `json:"-"`
	Source string    `json:"source"`
	Added  time.Time `json:"added"`
	// Sig is the member's HMAC under the pool's key (see members.sign): a member written into
	// Redis by anyone without the secret is ignored.
	Sig string `json:"sig"`
}

// replaceScript makes KEYS[1] the ARGV pairs (url, member) and publishes on the channel named
// first: what a load does when every member in Redis is unsigned (written by hand, or under
// another secret).
var replaceScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
redis.call('PUBLISH', ARGV[1], 'changed')
return 1
`)

// seedAndLoadScript seeds KEYS[1] with the ARGV pairs (url, member) when it does not exist, and
// returns the whole hash.
var seedAndLoadScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
end
if redis.call('HLEN', KEYS[1]) > ` + strconv.Itoa(maxLoaded) + ` then
  return redis.error_reply('the pool hash holds more members than any pool may')
end
return redis.call('HGETALL', KEYS[1])
`)

// maxLoaded bounds what a load reads: a pool hash grown past it (by hand: the API stops at
// MaxBackends) is refused whole rather than read into every instance's memory.
const maxLoaded = 4 * MaxBackends

// addScript adds ARGV[1] (member ARGV[2]) to KEYS[1], seeded first with the pairs from ARGV[5] if
// it does not exist, unless it is there (0) or the pool holds ARGV[3] backends (-1); it
// publishes on ARGV[4] and returns 1 when it added.
var addScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], 'changed')
return 1
`)

// removeScript removes ARGV[1] from KEYS[1] unless it is absent (0) or the last one (-1); it
// publishes on ARGV[2] and returns 1 when it removed.
var removeScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HLEN', KEYS[1]) <= 1 then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], 'changed')
return 1
`)

// members is the fleet's pool in Redis.
type members struct {
	rdb  redis.UniversalClient
	seed func() []member // what to seed an empty Redis with: the pool this instance holds
	key  []byte          // HMAC key of the members (from the secret)
	log  *slog.Logger
}

// sign returns the member's signature: whoever can write Redis but does not know the secret
// cannot add a backend (which would get every request, credentials included).
func (m *members) sign(mem member) string {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte(poolKey + "\x00" + mem.URL + "\x00" + mem.Source))
	return hex.EncodeToString(h.Sum(nil))
}

// encode is mem as Redis holds it, signed.
func (m *members) encode(mem member) []byte {
	mem.Sig = m.sign(mem)
	v, _ := json.Marshal(mem)
	return v
}

func (m *members) seedArgs() []any {
	seed := m.seed()
	args := make([]any, 0, 2*len(seed))
	now := time.Now().UTC()
	for _, s := range seed {
		s.Added = now
		args = append(args, s.URL, m.encode(s))
	}
	return args
}

// load returns the fleet's pool, seeding it with this instance's when Redis has none.
func (m *members) load(ctx context.Context) ([]member, error) {
	ctx, cancel := context.WithTimeout(ctx, poolTimeout)
	defer cancel()
	res, err := seedAndLoadScript.Run(ctx, m.rdb, []string{poolKey}, m.seedArgs()...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPoolStore, err)
	}
	out := make([]member, 0, len(res)/2)
	unsigned := 0
	for i := 0; i+1 < len(res); i += 2 {
		mem := member{URL: res[i]}
		err := json.Unmarshal([]byte(res[i+1]), &mem)
		mem.URL = res[i]
		if err != nil || !hmac.Equal([]byte(mem.Sig), []byte(m.sign(mem))) {
			unsigned++
			continue
		}
		out = append(out, mem)
	}
	if unsigned > 0 {
		m.log.Warn("origin pool: ignoring members of swr:pool:v1 without a valid signature (written without the secret, or under another one)", "ignored", unsigned, "kept", len(out))
	}
	if len(out) == 0 && unsigned > 0 {
		// Nothing the fleet wrote is left (the secret changed, or the hash was written by
		// hand): the pool this instance holds becomes the fleet's again.
		args := append([]any{poolChannel}, m.seedArgs()...)
		if err := replaceScript.Run(ctx, m.rdb, []string{poolKey}, args...).Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPoolStore, err)
		}
		return m.seed(), nil
	}
	return out, nil
}

func (m *members) add(ctx context.Context, mem member) error {
	ctx, cancel := context.WithTimeout(ctx, poolTimeout)
	defer cancel()
	mem.Added = time.Now().UTC()
	args := append([]any{mem.URL, m.encode(mem), MaxBackends, poolChannel}, m.seedArgs()...)
	n, err := addScript.Run(ctx, m.rdb, []string{poolKey}, args...).Int()
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrPoolStore, err)
	case n == 0:
		return ErrExists
	case n < 0:
		return ErrPoolFull
	}
	return nil
}

func (m *members) remove(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, poolTimeout)
	defer cancel()
	n, err := removeScript.Run(ctx, m.rdb, []string{poolKey}, id, poolChannel).Int()
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrPoolStore, err)
	case n == 0:
		return ErrNotFound
	case n < 0:
		return ErrLastBackend
	}
	return nil
}

// watch calls changed on every message of poolChannel, on every (re)subscription to it, and
// every poolPoll, until ctx is cancelled. go-redis re-subscribes after a lost connection; what
// was published while this instance was not subscribed (before its first subscription, while
// its connection was down, or before a restarted Redis came back empty and needs seeding) is
// loaded as soon as the subscription is confirmed, since any later change is then a message.
// The poll covers a message lost anyway.
func (m *members) watch(ctx context.Context, changed func()) {
	sub := m.rdb.Subscribe(ctx, poolChannel)
	defer sub.Close()
	msgs := sub.ChannelWithSubscriptions() // a *redis.Subscription on each (re)subscription
	t := time.NewTicker(poolPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-msgs:
			if !ok {
				return
			}
		case <-t.C:
		}
		changed()
	}
}
