package tiers

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/swrproxy/swrproxy/internal/redistest"
)

// newStore returns a Store on rdb (nil: L1 only) with a 64 MiB L1 trusted for a minute.
func newStore(t testing.TB, rdb redis.UniversalClient) *Store {
	t.Helper()
	return newStoreWith(t, Options{L1MaxBytes: 64 << 20, L1MaxTTL: time.Minute, Redis: rdb})
}

func newStoreWith(t testing.TB, o Options) *Store {
	t.Helper()
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	return s
}

// run runs s.Run until the test ends.
func run(t testing.TB, s *Store) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// outageClient is a client with production's short timeouts and no retries (of commands or
// dials, as main's newRedis), for tests that stop or freeze Redis.
func outageClient(t testing.TB, srv *redistest.Server) *redis.Client {
	return clientTo(t, srv.Addr())
}

// clientTo is outageClient for any address (a relay).
func clientTo(t testing.TB, addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{
		Addr:                  addr,
		DialTimeout:           500 * time.Millisecond,
		ReadTimeout:           250 * time.Millisecond,
		WriteTimeout:          250 * time.Millisecond,
		PoolTimeout:           300 * time.Millisecond,
		MaxRetries:            -1,
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// testEntry is a 200 response for key, fresh for an hour, stored now.
func testEntry(key, body string) *Entry {
	return &Entry{
		Key:                  key,
		Status:               200,
		Header:               []Field{{"Content-Type", "text/plain"}, {"Link", "</a>"}, {"Link", "</b>"}},
		Body:                 []byte(body),
		ETag:                 strconv.Quote(body),
		Stored:               time.Now(),
		Fresh:                time.Hour,
		StaleWhileRevalidate: time.Minute,
		StaleIfError:         time.Hour,
	}
}

// entryDiff describes how got differs from want, or returns "". Empty and nil slices are equal,
// and Stored is compared as an instant.
func entryDiff(got, want *Entry) string {
	if got == nil || want == nil {
		if got != want {
			return fmt.Sprintf("got %v, want %v", got, want)
		}
		return ""
	}
	var d []string
	check := func(field string, equal bool, g, w any) {
		if !equal {
			d = append(d, fmt.Sprintf("%s = %q, want %q", field, g, w))
		}
	}
	check("Key", got.Key == want.Key, got.Key, want.Key)
	check("Status", got.Status == want.Status, strconv.Itoa(int(got.Status)), strconv.Itoa(int(want.Status)))
	check("Header", slices.Equal(got.Header, want.Header), fmt.Sprint(got.Header), fmt.Sprint(want.Header))
	check("Body", bytes.Equal(got.Body, want.Body), got.Body, want.Body)
	check("ETag", got.ETag == want.ETag, got.ETag, want.ETag)
	check("LastModified", got.LastModified() == want.LastModified(), got.LastModified(), want.LastModified())
	check("Vary", slices.Equal(got.Vary, want.Vary), got.Vary, want.Vary)
	check("VaryValues", slices.Equal(got.VaryValues, want.VaryValues), got.VaryValues, want.VaryValues)
	check("Tags", slices.Equal(got.Tags, want.Tags), got.Tags, want.Tags)
	check("Stored", got.Stored.Equal(want.Stored), got.Stored.String(), want.Stored.String())
	check("Age", got.Age == want.Age, got.Age.String(), want.Age.String())
	check("Fresh", got.Fresh == want.Fresh, got.Fresh.String(), want.Fresh.String())
	check("StaleWhileRevalidate", got.StaleWhileRevalidate == want.StaleWhileRevalidate,
		got.StaleWhileRevalidate.String(), want.StaleWhileRevalidate.String())
	check("StaleIfError", got.StaleIfError == want.StaleIfError, got.StaleIfError.String(), want.StaleIfError.String())
	check("Gen", got.Gen == want.Gen, strconv.FormatUint(got.Gen, 10), strconv.FormatUint(want.Gen, 10))
	check("AnyEncoding", got.AnyEncoding == want.AnyEncoding, strconv.FormatBool(got.AnyEncoding), strconv.FormatBool(want.AnyEncoding))
	check("Encodings", slices.EqualFunc(got.Encodings, want.Encodings, func(a, b Encoding) bool {
		return a.Coding == b.Coding && a.ETag == b.ETag && bytes.Equal(a.Body, b.Body)
	}), fmt.Sprint(got.Encodings), fmt.Sprint(want.Encodings))
	return strings.Join(d, "; ")
}

// only returns the single variant of o, or nil.
func only(o *Object) *Entry {
	if o == nil || len(o.Variants) != 1 {
		return nil
	}
	return o.Variants[0]
}

// isMiss reports whether o gives a request nothing to serve.
func isMiss(o *Object) bool { return o == nil || len(o.Variants) == 0 }

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{"no l1 bytes", Options{L1MaxTTL: time.Second}},
		{"negative l1 bytes", Options{L1MaxBytes: -1, L1MaxTTL: time.Second}},
		{"no l1 ttl", Options{L1MaxBytes: 1 << 20}},
		{"negative l1 ttl", Options{L1MaxBytes: 1 << 20, L1MaxTTL: -time.Second}},
	}
	for _, tt := range tests {
		if s, err := New(tt.o); err == nil || s != nil {
			t.Errorf("%s: New = %v, %v; want an error", tt.name, s, err)
		}
	}
}

func testAnotherInstanceReadsFromL2ThenL1(t *testing.T, srv redistest.Topology) {
	a, b := newStore(t, srv.Connect(t)), newStore(t, srv.Connect(t)) // two instances, one Redis
	ctx := t.Context()
	e := roundTripTests[0].e // every field set, repeated headers, binary body
	e = &Entry{Key: "/a", Status: e.Status, Header: e.Header, Body: e.Body, ETag: e.ETag,
		Tags: e.Tags, Stored: time.Now().Add(-time.Second),
		Age: 2 * time.Second, Fresh: time.Hour, StaleWhileRevalidate: time.Minute, StaleIfError: 2 * time.Hour}
	if err := a.Set(ctx, e); err != nil {
		t.Fatalf("a.Set: %v", err)
	}
	if _, err := a.MarkStale(ctx, "/a"); err != nil { // the object is at generation 1...
		t.Fatalf("a.MarkStale: %v", err)
	}
	e.Gen = 1 // ...and so is its refreshed entry

	if err := a.Set(ctx, e); err != nil {
		t.Fatalf("a.Set: %v", err)
	}
	if o := a.Peek("/a"); only(o) != e {
		t.Errorf("a.Peek after a.Set = %+v, want the stored entry itself", o)
	}
	if o, tier, err := a.Get(ctx, "/a"); only(o) != e || tier != L1 || err != nil {
		t.Errorf("a.Get = %+v, %v, %v; want the entry from l1", o, tier, err)
	}
	if o := b.Peek("/a"); o != nil {
		t.Fatalf("b.Peek before any b.Get = %+v, want nil", o)
	}

	o, tier, err := b.Get(ctx, "/a")
	if err != nil || tier != L2 {
		t.Fatalf("b.Get = %+v, %v, %v; want an l2 hit", o, tier, err)
	}
	if d := entryDiff(only(o), e); d != "" {
		t.Errorf("b.Get entry differs: %s", d)
	}
	if o.Gen != 1 || o.Key != "/a" || o.Pass {
		t.Errorf("b.Get object = Key %q, Gen %d, Pass %v; want /a, 1, false", o.Key, o.Gen, o.Pass)
	}
	again, tier, err := b.Get(ctx, "/a")
	if again != o || tier != L1 || err != nil {
		t.Errorf("second b.Get = %p, %v, %v; want the promoted object %p from l1", again, tier, err, o)
	}
	if p := b.Peek("/a"); p != o {
		t.Errorf("b.Peek = %p, want the promoted object %p", p, o)
	}
	if o, tier, err := b.Get(ctx, "/nothing"); o != nil || tier != Miss || err != nil {
		t.Errorf("b.Get(unknown key) = %+v, %v, %v; want nil, miss, nil", o, tier, err)
	}
}

func testL2LifetimeIsWhatIsLeftOfTheEntry(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
	s := newStore(t, rdb)
	tests := []struct {
		name                     string
		stored                   time.Duration // before now
		age, fresh, swr, ifError time.Duration
	}{
		{"fresh only", 0, 0, time.Minute, 0, 0},
		{"stale-while-revalidate is longer", 0, 0, time.Minute, 10 * time.Minute, time.Minute},
		{"stale-if-error is longer", 0, 0, time.Minute, time.Minute, time.Hour},
		{"aged at the origin", 0, 40 * time.Second, time.Minute, 0, 30 * time.Second},
		{"stored a while ago", 10 * time.Second, 5 * time.Second, time.Minute, 30 * time.Second, 2 * time.Minute},
		{"stale already, inside its window", 2 * time.Minute, 0, time.Minute, 5 * time.Minute, 0},
	}
	for _, tt := range tests {
		key := "/ttl/" + tt.name
		e := testEntry(key, tt.name)
		e.Stored, e.Age, e.Fresh, e.StaleWhileRevalidate, e.StaleIfError = time.Now().Add(-tt.stored), tt.age, tt.fresh, tt.swr, tt.ifError
		// The lifetime is sent relative, so Redis counts it from when the
		// command arrives: at most what was left before Set, at least what
		// is left after PTTL (less a second of slack for a loaded machine).
		most := time.Until(e.Expires())
		if err := s.Set(t.Context(), e); err != nil {
			t.Fatalf("%s: Set: %v", tt.name, err)
		}
		got, err := rdb.PTTL(t.Context(), redisKey(key)).Result()
		if err != nil {
			t.Fatalf("%s: PTTL: %v", tt.name, err)
		}
		least := time.Until(e.Expires())
		if got > most+time.Millisecond || got < least-time.Second { // PTTL rounds to milliseconds
			t.Errorf("%s: PTTL = %v, want between %v and %v (fresh + longer stale window - age)", tt.name, got, least-time.Second, most)
		}
	}
}

func testAnEntryPastItsLifetimeIsNotStored(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
	tests := []struct {
		name string
		rdb  redis.UniversalClient
		edit func(e *Entry)
	}{
		{"expired an hour ago", rdb, func(e *Entry) { e.Stored = time.Now().Add(-3 * time.Hour) }},
		{"aged past freshness, no stale window", rdb, func(e *Entry) {
			e.Age, e.Fresh, e.StaleWhileRevalidate, e.StaleIfError = time.Minute, time.Minute, 0, 0
		}},
		{"no lifetime at all", rdb, func(e *Entry) { e.Fresh, e.StaleWhileRevalidate, e.StaleIfError = 0, 0, 0 }},
		{"expired, l1 only", nil, func(e *Entry) { e.Stored = time.Now().Add(-3 * time.Hour) }},
	}
	for _, tt := range tests {
		s := newStore(t, tt.rdb)
		key := "/expired/" + tt.name
		e := testEntry(key, "x")
		tt.edit(e)
		if err := s.Set(t.Context(), e); err != nil {
			t.Errorf("%s: Set = %v, want nil (nothing to do)", tt.name, err)
		}
		if o := s.Peek(key); o != nil {
			t.Errorf("%s: Peek = %+v, want nil", tt.name, o)
		}
		if n, err := rdb.Exists(t.Context(), redisKey(key)).Result(); n != 0 || err != nil {
			t.Errorf("%s: EXISTS %s = %d, %v; want 0 (go-redis would keep a zero TTL forever)", tt.name, redisKey(key), n, err)
		}
	}
}

func testRedisKeysCarryNoClientText(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
	s := newStore(t, rdb)
	ctx := t.Context()
	objectRE := regexp.MustCompile(`^swr:v4:\{[0-9a-f]{32}\}$`)
	keys := []string{"/api/prices?pair=ALGO-USD", "/api/prices?pair=ALGO-EUR", "example.com/{x}\r\n*", ""}
	seen := map[string]bool{}
	for _, k := range keys {
		rk := redisKey(k)
		if !objectRE.MatchString(rk) {
			t.Errorf("redisKey(%q) = %q, want swr:v4:{<32 hex>}", k, rk)
		}
		if redisKey(k) != rk {
			t.Errorf("redisKey(%q) is not stable", k)
		}
		if seen[rk] {
			t.Errorf("redisKey(%q) = %q collides with another key", k, rk)
		}
		seen[rk] = true
		e := testEntry(k, "body")
		e.Tags = []string{"asset-ALGO"}
		if err := s.Set(ctx, e); err != nil {
			t.Fatalf("Set(%q): %v", k, err)
		}
		if n := rdb.Exists(ctx, rk).Val(); n != 1 {
			t.Errorf("after Set(%q): %s does not exist", k, rk)
		}
	}
	l, ok, err := s.TryLock(ctx, keys[0], time.Minute)
	if !ok || err != nil {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	defer l.Unlock()
	if n := rdb.Exists(ctx, redisKey(keys[0])+":lock").Val(); n != 1 {
		t.Errorf("the lock is not at redisKey(key)+\":lock\"")
	}

	got, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	for _, rk := range got {
		if !strings.HasPrefix(rk, KeyPrefix) || strings.ContainsAny(rk, "/?=\r\n") ||
			strings.Contains(rk, "ALGO") || strings.Contains(rk, "prices") || strings.Contains(rk, "example") {
			t.Errorf("Redis key %q does not start with %s or carries client text", rk, KeyPrefix)
		}
	}
}
