package admin

// What the admin page's dashboard shows: this instance's counters, a 15-minute series of
// requests per second and hit ratio sampled every 5 s into a ring buffer, the fleet (every live
// instance's L1 size and rates, shared through Redis), the Redis circuit and the origin pool.

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/swrproxy/swrproxy/tiers"
)

const (
	sampleEvery = 5 * time.Second
	seriesLen   = int(15 * time.Minute / sampleEvery) // 180 points
	fleetKey    = tiers.KeyPrefix + "fleet"           // hash: instance → its latest fleetEntry
	fleetStale  = 3 * sampleEvery                     // an entry older than this is a gone instance
)

// point is one sample of the series.
type point struct {
	T   int64   `json:"t"` // unix seconds
	RPS float64 `json:"rps"`
	// HitRatio is, of the cacheable lookups in the interval (served from cache fresh or stale,
	// missed, or failed with no copy; passed-through requests left out), the share served from
	// cache; 0 for an idle interval.
	HitRatio float64 `json:"hit_ratio"`
}

// fleetEntry is what each instance publishes of itself.
type fleetEntry struct {
	Instance  string    `json:"instance"`
	L1Objects int       `json:"l1_objects"`
	L1Bytes   uint64    `json:"l1_bytes"`
	HitRatio  float64   `json:"hit_ratio"`
	RPS       float64   `json:"rps"`
	Seen      time.Time `json:"seen"`
}

// dashboard keeps the series. Safe for concurrent use.
type dashboard struct {
	cfg Config

	mu     sync.Mutex
	points []point // ring, oldest at head once full
	head   int
	prev   totals
	latest point
}

// totals are the counts a point is the difference of.
type totals struct {
	at            time.Time
	answers, hits int64 // answers to clients; lookups served from cache (fresh or stale)
	lookups       int64 // cacheable lookups: hits, misses and origin failures (bypass left out)
}

func newDashboard(cfg Config) *dashboard {
	return &dashboard{cfg: cfg, points: make([]point, 0, seriesLen)}
}

func (d *dashboard) totals(now time.Time) totals {
	if d.cfg.Metrics == nil {
		return totals{at: now}
	}
	h := d.cfg.Metrics.Snapshot().Handler
	hits := h.HitL1 + h.HitL2 + h.Stale
	return totals{at: now, answers: h.ClientSuccess + h.ClientFailed, hits: hits, lookups: hits + h.Miss + h.Errors}
}

// sample adds the point for the interval since the previous sample.
func (d *dashboard) sample(now time.Time) point {
	t := d.totals(now)
	d.mu.Lock()
	defer d.mu.Unlock()
	p := point{T: now.Unix()}
	if prev := d.prev; !prev.at.IsZero() {
		if secs := t.at.Sub(prev.at).Seconds(); secs > 0 {
			p.RPS = float64(t.answers-prev.answers) / secs
		}
		if n := t.lookups - prev.lookups; n > 0 {
			p.HitRatio = float64(t.hits-prev.hits) / float64(n)
		}
	}
	d.prev, d.latest = t, p
	if len(d.points) < seriesLen {
		d.points = append(d.points, p)
	} else {
		d.points[d.head] = p
		d.head = (d.head + 1) % seriesLen
	}
	return p
}

// series returns the points, oldest first.
func (d *dashboard) series() []point {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]point, 0, len(d.points))
	out = append(out, d.points[d.head:]...)
	return append(out, d.points[:d.head]...)
}

func (d *dashboard) instance() string {
	if d.cfg.Pool == nil {
		return ""
	}
	return d.cfg.Pool.Instance()
}

// self is this instance's fleet entry.
func (d *dashboard) self(now time.Time) fleetEntry {
	e := fleetEntry{Instance: d.instance(), Seen: now.UTC()}
	if d.cfg.Metrics != nil {
		st := d.cfg.Metrics.Snapshot().Store
		e.L1Objects, e.L1Bytes = st.L1Objects, st.L1Bytes
	}
	d.mu.Lock()
	e.HitRatio, e.RPS = d.latest.HitRatio, d.latest.RPS
	d.mu.Unlock()
	return e
}

// publish writes this instance's entry into the fleet hash (with Redis).
func (d *dashboard) publish(ctx context.Context, now time.Time) {
	if d.cfg.Redis == nil {
		return
	}
	b, _ := json.Marshal(d.self(now))
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := d.cfg.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, fleetKey, d.instance(), b)
		p.PExpire(ctx, fleetKey, 10*fleetStale) // gone with the last instance, as every key swrproxy writes
		return nil
	})
	if err != nil {
		d.cfg.Log.Debug("publishing the fleet entry failed", "err", err)
	}
}

// fleet returns the live instances' entries (this one's from memory when Redis fails), and drops
// gone ones from the hash.
func (d *dashboard) fleet(ctx context.Context, now time.Time) []fleetEntry {
	self := d.self(now)
	if d.cfg.Redis == nil {
		return []fleetEntry{self}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	all, err := d.cfg.Redis.HGetAll(ctx, fleetKey).Result()
	if err != nil {
		return []fleetEntry{self}
	}
	out := []fleetEntry{self}
	var gone []string
	for id, v := range all {
		var e fleetEntry
		if json.Unmarshal([]byte(v), &e) != nil || now.Sub(e.Seen) > fleetStale {
			gone = append(gone, id)
			continue
		}
		if id != self.Instance {
			out = append(out, e)
		}
	}
	if len(gone) > 0 {
		d.cfg.Redis.HDel(ctx, fleetKey, gone...)
	}
	return out
}

// Run samples the dashboard's series and publishes this instance's fleet entry every 5 s until
// ctx is cancelled; it returns nil.
func (a *Admin) Run(ctx context.Context) error {
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	a.dash.sample(time.Now())
	for {
		a.dash.publish(ctx, time.Now())
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			a.dash.sample(now)
		}
	}
}

// dashboardCounters are the counters the dashboard's cards show, by their names in /_swr/stats
// (metrics' table gives their values, so the page and the endpoint cannot disagree).
var dashboardCounters = []string{"hits_l1", "hits_l2", "misses", "stale_served", "bypass",
	"origin_requests", "origin_errors", "refresh_queue"}

// dashboardJSON is GET /_swr/ui/api/dashboard.
func (a *Admin) dashboardJSON(c *fiber.Ctx) error {
	now := time.Now()
	counters := fiber.Map{}
	if a.cfg.Metrics != nil {
		s := a.cfg.Metrics.Snapshot()
		for _, name := range dashboardCounters {
			if v, ok := s.Value(name); ok {
				counters[name] = v
			}
		}
	}
	circuit := "closed"
	if a.cfg.Store != nil && a.cfg.Store.L2Open() {
		circuit = "open"
	}
	var backends any = []any{}
	if a.cfg.Pool != nil {
		backends = a.cfg.Pool.Servers()
	}
	return c.JSON(fiber.Map{
		"instance": a.dash.instance(), "now": now.UTC(),
		"redis":    fiber.Map{"configured": a.cfg.Redis != nil, "circuit": circuit},
		"fleet":    a.dash.fleet(context.Background(), now),
		"series":   fiber.Map{"step_seconds": int(sampleEvery.Seconds()), "points": a.dash.series()},
		"counters": counters, "backends": backends,
	})
}
