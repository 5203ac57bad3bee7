package tiers

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/swrproxy/swrproxy/internal/redistest"
	"github.com/swrproxy/swrproxy/internal/testenv"
)

func TestPassMarkerIsReplacedByAStoredEntry(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	for _, tt := range []struct {
		name string
		rdb  redis.UniversalClient
	}{{"l1 only", nil}, {"with redis", rdb}} {
		s := newStore(t, tt.rdb)
		key := "/pass/" + tt.name
		s.MarkPass(key, time.Minute)
		o := s.Peek(key)
		if o == nil || !o.Pass || len(o.Variants) != 0 {
			t.Fatalf("%s: Peek after MarkPass = %+v, want a pass marker", tt.name, o)
		}
		if n := rdb.Exists(t.Context(), redisKey(key)).Val(); n != 0 {
			t.Errorf("%s: MarkPass wrote to Redis; pass markers live in l1 only", tt.name)
		}
		e := testEntry(key, "cacheable now")
		if err := s.Set(t.Context(), e); err != nil {
			t.Fatalf("%s: Set: %v", tt.name, err)
		}
		if o := s.Peek(key); o == nil || o.Pass || only(o) != e {
			t.Errorf("%s: Peek after Set = %+v, want the entry, no pass marker", tt.name, o)
		}
	}
}

func TestMarkPassDoesNotOverrideAStoredEntry(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.Client())
	ctx := t.Context()
	e := testEntry("/stored", "x")
	if err := s.Set(ctx, e); err != nil {
		t.Fatalf("Set: %v", err)
	}
	s.MarkPass("/stored", time.Minute)
	if o := s.Peek("/stored"); o == nil || o.Pass || only(o) != e {
		t.Errorf("Peek after MarkPass over an entry = %+v, want the entry", o)
	}

	// A recent invalidation wins too: its generation must survive.
	if err := s.Delete(ctx, "/stored"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	o, _, _ := s.Get(ctx, "/stored")
	s.MarkPass("/stored", time.Minute)
	if p := s.Peek("/stored"); p == nil || p.Pass || p.Gen != o.Gen {
		t.Errorf("Peek after MarkPass over a tombstone = %+v, want the tombstone of generation %d", p, o.Gen)
	}

	// A pass marker expires.
	s.MarkPass("/short", 500*time.Millisecond)
	if o := s.Peek("/short"); o == nil || !o.Pass {
		t.Fatalf("Peek after MarkPass = %+v, want a pass marker", o)
	}
	testenv.WaitFor(t, 3*time.Second, "the short entry to leave L1", func() bool { return s.Peek("/short") == nil })
}
