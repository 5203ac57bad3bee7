package ratelog

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRepeatedWarningsAreHeldBackAndCounted(t *testing.T) {
	var buf bytes.Buffer
	h := New(slog.NewTextHandler(&buf, nil), time.Second)
	now := time.Unix(1000, 0)
	h.now = func() time.Time { return now }
	log := slog.New(h)
	for range 5 {
		log.Warn("origin failed", "key", "/a")
	}
	log.Info("info is never limited")
	log.Info("info is never limited")
	log.Warn("another message")
	now = now.Add(1100 * time.Millisecond)
	log.With("instance", "x").Warn("origin failed", "key", "/b")
	out := buf.String()
	if n := strings.Count(out, "origin failed"); n != 2 {
		t.Errorf("origin failed logged %d times, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, "suppressed=4") {
		t.Errorf("no suppressed=4 on the second line:\n%s", out)
	}
	if strings.Count(out, "info is never limited") != 2 || !strings.Contains(out, "another message") {
		t.Errorf("other records went missing:\n%s", out)
	}
}

func TestEnabledFollowsTheInnerHandler(t *testing.T) {
	h := New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelError}), time.Second)
	if h.Enabled(context.Background(), slog.LevelWarn) {
		t.Error("warn enabled under an error-level handler")
	}
}
