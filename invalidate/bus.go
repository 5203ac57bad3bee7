package invalidate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/tiers"
)

// Redis names of the coherence protocol.
const (
	channelInvalidate = tiers.KeyPrefix + "invalidate"
	channelAck        = tiers.KeyPrefix + "ack"
	instancesKey      = tiers.KeyPrefix + "instances"
)

// heartbeat and liveFor decide which instances count as live.
const (
	heartbeat = time.Second
	liveFor   = 3500 * time.Millisecond
)

// Message tells every instance which L1 copies to drop.
type Message struct {
	ID       string   `json:"id"`
	From     string   `json:"from"`
	Keys     []string `json:"keys,omitempty"`
	Prefixes []string `json:"prefixes,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	All      bool     `json:"all,omitempty"`
}

type ack struct {
	ID   string `json:"id"`
	From string `json:"from"`
}

// Bus carries invalidation messages between instances over Redis pub/sub: each instance drops
// the L1 copies a message names, then acknowledges it. It also keeps this instance's heartbeat,
// so that Publish knows how many acknowledgements to wait for. Safe for concurrent use.
type Bus struct {
	rdb redis.UniversalClient
	log *slog.Logger
	id  string

	mu      sync.Mutex
	waiters map[string]*waiter
}

type waiter struct {
	from map[string]bool
	ch   chan struct{} // signalled on each new ack
}

// NewBus returns a bus over rdb. The Service it is given to runs it.
func NewBus(rdb redis.UniversalClient, log *slog.Logger) *Bus {
	var b [8]byte
	rand.Read(b[:])
	return &Bus{rdb: rdb, log: log, id: hex.EncodeToString(b[:]), waiters: map[string]*waiter{}}
}

// run subscribes, applies the other instances' messages with drop, acknowledges every message and
// beats the heartbeat until ctx is cancelled; it returns nil. After a lost subscription is
// re-established, it drops this instance's whole L1: messages may have been missed meanwhile.
func (b *Bus) run(ctx context.Context, drop func(Message)) error {
	ps := b.rdb.Subscribe(ctx, channelInvalidate, channelAck)
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(redis.WithChannelHealthCheckInterval(5 * time.Second))
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	b.beat(ctx)
	subscribed := 0
	for {
		select {
		case <-ctx.Done():
			b.leave()
			return nil
		case <-beat.C:
			b.beat(ctx)
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind != "subscribe" {
					continue
				}
				subscribed++
				if subscribed > 2 { // 2 channels: the first two confirmations are the initial ones
					b.log.Warn("invalidation channel re-subscribed; dropping L1 (messages may have been missed)")
					drop(Message{All: true})
				}
			case *redis.Message:
				b.receive(ctx, m, drop)
			}
		}
	}
}

func (b *Bus) receive(ctx context.Context, m *redis.Message, drop func(Message)) {
	switch m.Channel {
	case channelInvalidate:
		var msg Message
		if err := json.Unmarshal([]byte(m.Payload), &msg); err != nil {
			b.log.Warn("ignoring malformed invalidation message", "err", err)
			return
		}
		if msg.From != b.id { // the publisher applied it before publishing
			drop(msg)
		}
		payload, _ := json.Marshal(ack{ID: msg.ID, From: b.id})
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := b.rdb.Publish(actx, channelAck, payload).Err(); err != nil {
			b.log.Warn("acknowledging invalidation failed", "id", msg.ID, "err", err)
		}
	case channelAck:
		var a ack
		if json.Unmarshal([]byte(m.Payload), &a) != nil {
			return
		}
		b.mu.Lock()
		if w := b.waiters[a.ID]; w != nil && !w.from[a.From] {
			w.from[a.From] = true
			select {
			case w.ch <- struct{}{}:
			default:
			}
		}
		b.mu.Unlock()
	}
}

func (b *Bus) beat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	now := time.Now().UnixMilli()
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, instancesKey, redis.Z{Score: float64(now), Member: b.id})
		p.ZRemRangeByScore(ctx, instancesKey, "-inf", formatMs(now-int64(time.Minute/time.Millisecond)))
		p.Expire(ctx, instancesKey, time.Minute)
		return nil
	})
	if err != nil {
		b.log.Debug("heartbeat failed", "err", err)
	}
}

func (b *Bus) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	b.rdb.ZRem(ctx, instancesKey, b.id)
}

// Live returns how many instances beat the heartbeat recently (this one included), or 0 when
// Redis cannot tell.
func (b *Bus) Live(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	n, err := b.rdb.ZCount(ctx, instancesKey, formatMs(time.Now().Add(-liveFor).UnixMilli()), "+inf").Result()
	if err != nil {
		return 0
	}
	return int(n)
}

// Publish sends m to every instance and waits until all live instances acknowledged it, or until
// wait passes. It returns the live count and the acknowledgements (this instance's own included).
// The caller has already applied m to this instance.
func (b *Bus) Publish(ctx context.Context, m Message, wait time.Duration) (live, acked int, err error) {
	var id [8]byte
	rand.Read(id[:])
	m.ID, m.From = hex.EncodeToString(id[:]), b.id
	w := &waiter{from: map[string]bool{}, ch: make(chan struct{}, 1)}
	b.mu.Lock()
	b.waiters[m.ID] = w
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiters, m.ID)
		b.mu.Unlock()
	}()

	if wait > 0 {
		live = b.Live(ctx)
	}
	payload, _ := json.Marshal(m)
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	err = b.rdb.Publish(pctx, channelInvalidate, payload).Err()
	cancel()
	if err != nil {
		return live, 1, err
	}
	count := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		n := len(w.from)
		if !w.from[b.id] {
			n++ // we applied it ourselves before publishing
		}
		return n
	}
	if wait <= 0 {
		return live, count(), nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		if n := count(); n >= live {
			return live, n, nil
		}
		select {
		case <-w.ch:
		case <-t.C:
			return live, count(), nil
		case <-ctx.Done():
			return live, count(), ctx.Err()
		}
	}
}

// formatMs writes a Unix time in ms as a sorted-set score bound.
func formatMs(ms int64) string { return strconv.FormatInt(ms, 10) }
