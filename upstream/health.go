package upstream

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// HealthOptions are the active health checks of every backend (weldr's defaults: every 30 s a
// GET / that must answer 2xx within 5 s; 3 failures in a row mark a backend down, 2 passes in a
// row mark it up again).
type HealthOptions struct {
	Interval time.Duration // SWR_HEALTH_INTERVAL
	Path     string        // SWR_HEALTH_PATH, origin-form
	Timeout  time.Duration // SWR_HEALTH_TIMEOUT
	Fall     int           // SWR_HEALTH_FALL
	Rise     int           // SWR_HEALTH_RISE
}

func (o *HealthOptions) defaults() {
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	o.Fall, o.Rise = max(o.Fall, 1), max(o.Rise, 1)
}

// maxCheckBody is how much of a health check's response body is read (so that its connection
// can be reused); the rest is dropped with the connection.
const maxCheckBody = 64 << 10

// failure notes a failed check, or a failed exchange on real traffic (connection refused, reset,
// timeout; passive). Fall failed checks in a row mark b down, and so do Fall failures on traffic
// in a row; the two runs are counted apart, because an answer ends a run on traffic but says
// nothing of what the checks ask (a health path that reports a broken dependency, a backend
// answering 503 to everything), and a passed check ends both. Traffic alone never takes down the
// last backend that is up, as nginx never marks a lone server unavailable: that would turn a few
// failed requests into an outage until the checks bring it back. Its checks still can.
//
// The count of backends up and the change it licenses are one step under c.passive: two
// backends failing on traffic at once would otherwise each count the other up and both go down.
// (Lock order: b.mu, then c.passive; Healthy takes no lock.)
func (c *Client) failure(b *backend, now time.Time, passive bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if passive && !b.up.Load() {
		return // a request that was in flight when b went down: only checks bring it back
	}
	run := &b.fails
	if passive {
		run = &b.trafficFails
	}
	*run++
	b.passes = 0
	if !b.up.Load() || *run < c.health.Fall {
		return
	}
	if passive {
		c.passive.Lock()
		defer c.passive.Unlock()
		if c.Healthy() <= 1 {
			return
		}
	}
	b.up.Store(false)
	b.since = now
	if passive {
		c.log.Warn("backend down: requests to it failed", "backend", b.id, "failures", *run)
		return
	}
	hint := ""
	if s := b.check.Status; s >= 300 && s < 500 {
		hint = "the health check must answer 2xx (redirects are not followed): set SWR_HEALTH_PATH to a path that does"
	}
	c.log.Warn("backend down: health checks failed", "backend", b.id, "failures", *run, "last", b.check.Error, "hint", hint)
}

// passed notes a passed health check: Rise of them in a row mark a down backend up.
func (c *Client) passed(b *backend, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails, b.trafficFails = 0, 0
	if b.up.Load() {
		return
	}
	if b.passes++; b.passes >= c.health.Rise {
		b.up.Store(true)
		b.since, b.passes = now, 0
		c.log.Info("backend up", "backend", b.id)
	}
}

// answered notes a response on real traffic: the failures on traffic of an up backend no longer
// run in a row. (Only checks bring a down backend back: traffic does not reach it.)
func (c *Client) answered(b *backend) {
	b.mu.Lock()
	if b.up.Load() {
		b.trafficFails = 0
	}
	b.mu.Unlock()
}

// runHealth checks every backend of the pool, each on its own loop, until ctx is cancelled;
// loops start and stop with membership changes.
func (c *Client) runHealth(ctx context.Context) {
	running := map[*backend]context.CancelFunc{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		set := c.backends()
		live := make(map[*backend]bool, len(set))
		for _, b := range set {
			live[b] = true
			if running[b] == nil {
				bctx, cancel := context.WithCancel(ctx)
				running[b] = cancel
				wg.Go(func() { c.checkLoop(bctx, b) })
			}
		}
		for b, cancel := range running {
			if !live[b] {
				cancel()
				delete(running, b)
			}
		}
		select {
		case <-ctx.Done():
			for _, cancel := range running {
				cancel()
			}
			return
		case <-c.changed:
		}
	}
}

// checkLoop checks b every interval; the first check comes after a random part of the interval,
// so that instances and backends do not all check at once.
func (c *Client) checkLoop(ctx context.Context, b *backend) {
	t := time.NewTimer(rand.N(c.health.Interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.checkOnce(ctx, b)
		t.Reset(c.health.Interval)
	}
}

// checkOnce sends one health check to b and notes its outcome.
func (c *Client) checkOnce(ctx context.Context, b *backend) {
	ctx, cancel := context.WithTimeout(ctx, c.health.Timeout)
	defer cancel()
	start := time.Now()
	chk := Check{At: start}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, targetOf(b.url, c.health.Path), nil)
	if err == nil {
		req.Host = b.url.Host
		if c.host != "" {
			req.Host = c.host
		}
		req.Header.Set("User-Agent", "swrproxy-health-check")
		var resp *http.Response
		if resp, err = c.hc.Do(req); err == nil {
			chk.Status = resp.StatusCode
			_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxCheckBody))
			resp.Body.Close()
		}
	}
	if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return // stopping, or the backend left the pool: not a verdict on it
	}
	now := time.Now()
	chk.Duration = now.Sub(start)
	ok := err == nil && chk.Status >= 200 && chk.Status < 300
	if err != nil {
		chk.Error = unwrapURLError(err).Error()
	} else if !ok {
		chk.Error = "status " + strconv.Itoa(chk.Status) + ", want 2xx"
	}
	b.mu.Lock()
	b.check = chk
	b.mu.Unlock()
	if ok {
		c.passed(b, now)
	} else {
		c.failure(b, now, false)
	}
}
