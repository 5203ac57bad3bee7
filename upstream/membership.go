package upstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Membership: which backends the pool holds. Changes through the API (Add, Remove), loads of
// the fleet's pool from Redis (Sync, reload) and what they apply, keeping the state and counters
// of the backends that stay.

// apply makes ms the pool, keeping the state and counters of the backends that stay.
func (c *Client) apply(ms []member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applyLocked(ms)
}

// update changes this process's pool (without Redis) by edit, atomically.
func (c *Client) update(edit func(cur []member) ([]member, error)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	set := c.backends()
	cur := make([]member, len(set))
	for i, b := range set {
		cur[i] = member{URL: b.id, Source: b.source}
	}
	next, err := edit(cur)
	if err == nil {
		c.applyLocked(next)
	}
	return err
}

// current is the pool this instance holds, as members.
func (c *Client) current() []member {
	set := c.backends()
	ms := make([]member, len(set))
	for i, b := range set {
		ms[i] = member{URL: b.id, Source: b.source}
	}
	return ms
}

// applyLocked is apply with c.mu held. The list is kept in URL order, so that every instance
// goes round it alike. A list without one valid backend (a hand-edited hash in Redis) leaves
// the pool as it is; past MaxBackends, the first in URL order are kept.
func (c *Client) applyLocked(ms []member) {
	old := map[string]*backend{}
	if p := c.set.Load(); p != nil {
		for _, b := range *p {
			old[b.id] = b
		}
	}
	now := time.Now()
	ms = slices.SortedFunc(slices.Values(ms), func(a, b member) int { return cmp.Compare(a.URL, b.URL) })
	next := make([]*backend, 0, min(len(ms), MaxBackends))
	for _, m := range ms {
		if len(next) == MaxBackends {
			c.log.Warn("origin pool: the fleet's pool lists too many backends; using the first", "listed", len(ms), "used", MaxBackends)
			break
		}
		if b, ok := old[m.URL]; ok {
			if b != nil {
				next = append(next, b)
			}
			old[m.URL] = nil // taken (a repeated URL is one backend)
			continue
		}
		u, err := ParseBackend(m.URL)
		if err != nil || u.String() != m.URL {
			c.log.Warn("ignoring a bad backend of the fleet's pool", "url", m.URL, "err", err)
			continue
		}
		next = append(next, newBackend(u, m.Source, now))
		old[m.URL] = nil
		if c.set.Load() != nil {
			c.log.Info("backend added", "backend", m.URL, "source", m.Source)
		}
	}
	for id, b := range old {
		if b != nil {
			c.log.Info("backend removed", "backend", id)
		}
	}
	slices.SortFunc(next, func(a, b *backend) int { return cmp.Compare(a.id, b.id) })
	if p := c.set.Load(); p != nil && (len(next) == 0 || slices.Equal(*p, next)) {
		if len(next) == 0 {
			c.log.Warn("origin pool: the fleet's pool lists no valid backend; keeping this instance's")
		}
		return
	}
	c.set.Store(&next)
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Add adds the backend at raw (an http or https base URL) to the pool of the whole fleet. The
// error wraps ErrBadBackend (with the reason), ErrExists, ErrPoolFull or ErrPoolStore.
func (c *Client) Add(ctx context.Context, raw string) (Server, error) {
	u, err := ParseBackend(raw)
	if err != nil {
		return Server{}, fmt.Errorf("%w: %w", ErrBadBackend, err)
	}
	m := member{URL: u.String(), Source: SourceAPI}
	if c.members != nil {
		err := c.members.add(ctx, m)
		if errors.Is(err, ErrExists) {
			c.reload(ctx) // this instance may have missed it
		}
		if err != nil {
			return Server{}, err
		}
		c.reload(ctx)
	} else if err := c.update(func(cur []member) ([]member, error) { return added(cur, m) }); err != nil {
		return Server{}, err
	}
	for _, b := range c.backends() {
		if b.id == m.URL {
			return b.server(time.Now()), nil
		}
	}
	return Server{URL: m.URL, State: "up", Since: time.Now(), Source: SourceAPI}, nil
}

// Remove removes a backend from the pool of the whole fleet: target is its URL, or its
// "host:port" (which must name one backend). Requests in flight to it finish. It returns the
// URL removed; the error wraps ErrBadBackend, ErrNotFound, ErrAmbiguous, ErrLastBackend or
// ErrPoolStore.
func (c *Client) Remove(ctx context.Context, target string) (string, error) {
	if c.members != nil {
		list, err := c.members.load(ctx)
		if err != nil {
			return "", err
		}
		id, err := resolve(list, target)
		if err != nil {
			return "", err
		}
		if err := c.members.remove(ctx, id); err != nil {
			return "", err
		}
		c.reload(ctx)
		return id, nil
	}
	var id string
	err := c.update(func(cur []member) (next []member, err error) {
		if id, err = resolve(cur, target); err != nil {
			return nil, err
		}
		return removed(cur, id)
	})
	return id, err
}

// added is the pool cur with m added, or why it cannot be.
func added(cur []member, m member) ([]member, error) {
	for _, o := range cur {
		if o.URL == m.URL {
			return nil, ErrExists
		}
	}
	if len(cur) >= MaxBackends {
		return nil, ErrPoolFull
	}
	return append(cur, m), nil
}

// removed is the pool cur without the backend id, or why it cannot be.
func removed(cur []member, id string) ([]member, error) {
	next := slices.DeleteFunc(slices.Clone(cur), func(m member) bool { return m.URL == id })
	switch {
	case len(next) == len(cur):
		return nil, ErrNotFound
	case len(next) == 0:
		return nil, ErrLastBackend
	}
	return next, nil
}

// resolve finds the backend of list that target names: a URL, or a host:port.
func resolve(list []member, target string) (string, error) {
	var byURL string
	if u, err := ParseBackend(target); err == nil {
		byURL = u.String()
	} else if _, _, err := net.SplitHostPort(target); err != nil {
		return "", fmt.Errorf("%w: %q is neither a backend URL nor host:port", ErrBadBackend, target)
	}
	var found []string
	for _, m := range list {
		if m.URL == byURL {
			return m.URL, nil
		}
		if byURL == "" {
			// Host names are case-insensitive (RFC 3986 §3.2.2); the list's are lower case.
			if u, err := url.Parse(m.URL); err == nil && strings.EqualFold(hostPort(u), target) {
				found = append(found, m.URL)
			}
		}
	}
	switch len(found) {
	case 0:
		return "", ErrNotFound
	case 1:
		return found[0], nil
	}
	return "", ErrAmbiguous
}

// Sync loads the fleet's pool from Redis (seeding it with the environment's list when Redis has
// none). A failure is logged and the current pool kept: Run keeps trying. When the fleet's pool
// is not the environment's list, it says so: the fleet's wins, and an operator who changed
// SWR_UPSTREAM should know that it did nothing.
func (c *Client) Sync(ctx context.Context) {
	if c.members == nil {
		return
	}
	c.reload(ctx)
	var fleet []string
	for _, b := range c.backends() {
		fleet = append(fleet, b.id)
	}
	if !slices.Equal(fleet, c.env) {
		c.log.Warn("SWR_UPSTREAM differs from the fleet's pool in Redis (swr:pool:v1): using the fleet's; change it through /_swr/servers",
			"SWR_UPSTREAM", strings.Join(c.env, ","), "fleet", strings.Join(fleet, ","))
	}
}

// reload loads the fleet's pool and applies it, unless a load that began later was applied
// meanwhile (an Add's reload and the poll's may cross: the older must not win).
func (c *Client) reload(ctx context.Context) {
	seq := c.loads.Add(1)
	ms, err := c.members.load(ctx)
	if err != nil {
		c.log.Warn("origin pool: keeping the last known pool", "err", err)
		return
	}
	c.applyLoaded(seq, ms)
}

// applyLoaded applies ms, the result of the load numbered seq, unless a later one was applied.
func (c *Client) applyLoaded(seq uint64, ms []member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq < c.applied {
		return
	}
	c.applied = seq
	c.applyLocked(ms)
}
