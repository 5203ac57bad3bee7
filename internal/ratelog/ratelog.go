// Package ratelog keeps an outage from flooding the log: a slog.Handler that lets each warning or
// error message through at most once per interval, and reports how many it held back.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Handler passes records below slog.LevelWarn through untouched; a warning or error whose message
// was already logged within Every is counted instead, and the next one let through carries the
// count as "suppressed". Safe for concurrent use.
type Handler struct {
	inner slog.Handler
	every time.Duration
	now   func() time.Time
	state *state
}

type state struct {
	mu   sync.Mutex
	msgs map[string]*seen
}

type seen struct {
	last       time.Time
	suppressed int
}

// New wraps inner.
func New(inner slog.Handler, every time.Duration) *Handler {
	return &Handler{inner: inner, every: every, now: time.Now, state: &state{msgs: map[string]*seen{}}}
}

func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.inner.Handle(ctx, r)
	}
	now := h.now()
	h.state.mu.Lock()
	s := h.state.msgs[r.Message]
	if s == nil {
		if len(h.state.msgs) > 10000 { // bound the memory of distinct messages
			clear(h.state.msgs)
		}
		s = &seen{}
		h.state.msgs[r.Message] = s
	}
	if !s.last.IsZero() && now.Sub(s.last) < h.every {
		s.suppressed++
		h.state.mu.Unlock()
		return nil
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	h.state.mu.Unlock()
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", n))
	}
	return h.inner.Handle(ctx, r)
}

func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{inner: h.inner.WithAttrs(attrs), every: h.every, now: h.now, state: h.state}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), every: h.every, now: h.now, state: h.state}
}
