package tiers

import (
	"bytes"
	"context"
	"errors"
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
	check("Status", got.Status == want.Status, strconv.Itoa(got.Status), strconv.Itoa(want.Status))
	check("Header", slices.Equal(got.Header, want.Header), fmt.Sprint(got.Header), fmt.Sprint(want.Header))
	check("Body", bytes.Equal(got.Body, want.Body), got.Body, want.Body)
	check("ETag", got.ETag == want.ETag, got.ETag, want.ETag)
	check("LastModified", got.LastModified == want.LastModified, got.LastModified, want.LastModified)
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

// waitFor polls cond until it holds or d passes, then fails the test.
func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

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

func TestAnotherInstanceReadsFromL2ThenL1(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newStore(t, srv.Client()), newStore(t, srv.Client()) // two instances, one Redis
	ctx := t.Context()
	e := roundTripTests[0].e // every field set, repeated headers, binary body
	e = &Entry{Key: "/a", Status: e.Status, Header: e.Header, Body: e.Body, ETag: e.ETag,
		LastModified: e.LastModified, Tags: e.Tags, Stored: time.Now().Add(-time.Second),
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

func TestL2LifetimeIsWhatIsLeftOfTheEntry(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
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
		if err := s.Set(t.Context(), e); err != nil {
			t.Fatalf("%s: Set: %v", tt.name, err)
		}
		want := time.Until(e.Expires())
		got, err := rdb.PTTL(t.Context(), RedisKey(key)).Result()
		if err != nil {
			t.Fatalf("%s: PTTL: %v", tt.name, err)
		}
		if got > want+10*time.Millisecond || got < want-time.Second { // PTTL rounds to milliseconds
			t.Errorf("%s: PTTL = %v, want about %v (fresh + longer stale window - age)", tt.name, got, want)
		}
	}
}

func TestAnEntryPastItsLifetimeIsNotStored(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
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
		if n, err := rdb.Exists(t.Context(), RedisKey(key)).Result(); n != 0 || err != nil {
			t.Errorf("%s: EXISTS %s = %d, %v; want 0 (go-redis would keep a zero TTL forever)", tt.name, RedisKey(key), n, err)
		}
	}
}

func TestRedisKeysCarryNoClientText(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	s := newStore(t, rdb)
	ctx := t.Context()
	objectRE := regexp.MustCompile(`^swr:v2:\{[0-9a-f]{32}\}$`)
	keys := []string{"/api/prices?pair=ALGO-USD", "/api/prices?pair=ALGO-EUR", "example.com/{x}\r\n*", ""}
	seen := map[string]bool{}
	for _, k := range keys {
		rk := RedisKey(k)
		if !objectRE.MatchString(rk) {
			t.Errorf("RedisKey(%q) = %q, want swr:v2:{<32 hex>}", k, rk)
		}
		if RedisKey(k) != rk {
			t.Errorf("RedisKey(%q) is not stable", k)
		}
		if seen[rk] {
			t.Errorf("RedisKey(%q) = %q collides with another key", k, rk)
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
	if n := rdb.Exists(ctx, RedisKey(keys[0])+":lock").Val(); n != 1 {
		t.Errorf("the lock is not at RedisKey(key)+\":lock\"")
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

func TestVariantsOfOneKeyCoexist(t *testing.T) {
	srv := redistest.Start(t)
	a, c := newStore(t, srv.Client()), newStore(t, srv.Client())
	ctx := t.Context()
	en, de := testEntry("/v", "hello"), testEntry("/v", "hallo")
	en.Vary, en.VaryValues = []string{"Accept-Language"}, []string{"en"}
	de.Vary, de.VaryValues = []string{"Accept-Language"}, []string{"de"}
	for _, e := range []*Entry{en, de} {
		if err := a.Set(ctx, e); err != nil {
			t.Fatalf("Set(%q): %v", e.VaryValues, err)
		}
	}
	lang := func(v string) func(string) string {
		return func(name string) string {
			if name == "Accept-Language" {
				return v
			}
			return ""
		}
	}
	o2, tier, err := c.Get(ctx, "/v") // a third instance, from L2
	if tier != L2 || err != nil {
		t.Fatalf("c.Get = %v, %v; want an l2 hit", tier, err)
	}
	for name, o := range map[string]*Object{"a.Peek": a.Peek("/v"), "c.Get": o2} {
		if o == nil || len(o.Variants) != 2 {
			t.Fatalf("%s = %+v, want two variants", name, o)
		}
		tests := []struct {
			value string
			want  *Entry
		}{
			{"en", en},
			{"de", de},
			{"fr", nil},
			{"", nil},
		}
		for _, tt := range tests {
			if d := entryDiff(o.Variant(lang(tt.value)), tt.want); d != "" {
				t.Errorf("%s: Variant(Accept-Language: %q): %s", name, tt.value, d)
			}
		}
	}

	// Replacing one variant keeps the other.
	en2 := testEntry("/v", "hi")
	en2.Vary, en2.VaryValues = en.Vary, en.VaryValues
	if err := a.Set(ctx, en2); err != nil {
		t.Fatalf("Set(en again): %v", err)
	}
	c.Forget("/v")
	o, _, err := c.Get(ctx, "/v")
	if err != nil || o == nil || len(o.Variants) != 2 {
		t.Fatalf("c.Get after replacing en = %+v, %v; want two variants", o, err)
	}
	if d := entryDiff(o.Variant(lang("en")), en2); d != "" {
		t.Errorf("en after replacing it: %s", d)
	}
	if d := entryDiff(o.Variant(lang("de")), de); d != "" {
		t.Errorf("de after replacing en: %s", d)
	}
}

// A client cycling through values of a Vary'd header must not grow one object without limit, nor
// wipe the variants everyone else uses: past maxVariants, only the least recently stored goes.
func TestOnlyTheLeastRecentlyStoredVariantIsEvicted(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	s := newStore(t, rdb)
	ctx := t.Context()
	variant := func(i int) *Entry {
		e := testEntry("/many", "v"+strconv.Itoa(i))
		e.Vary, e.VaryValues = []string{"X-Client"}, []string{strconv.Itoa(i)}
		return e
	}
	set := func(i int) {
		t.Helper()
		if err := s.Set(ctx, variant(i)); err != nil {
			t.Fatalf("Set(variant %d): %v", i, err)
		}
	}
	// stored returns the variants in L2, read by another instance.
	stored := func() []int {
		t.Helper()
		o, err := newStore(t, rdb).GetL2(ctx, "/many")
		if err != nil || o == nil {
			t.Fatalf("GetL2 = %+v, %v", o, err)
		}
		var got []int
		for _, e := range o.Variants {
			n, _ := strconv.Atoi(e.VaryValues[0])
			got = append(got, n)
		}
		slices.Sort(got)
		return got
	}
	upTo := func(from, to int, except ...int) []int {
		var want []int
		for i := from; i <= to; i++ {
			if !slices.Contains(except, i) {
				want = append(want, i)
			}
		}
		return want
	}

	for i := range maxVariants {
		set(i)
	}
	set(0) // stored again: now 1 is the least recently stored
	set(maxVariants)
	if got, want := stored(), upTo(0, maxVariants, 1); !slices.Equal(got, want) {
		t.Errorf("L2 after a %dth variant holds %v, want %v (all but the least recently stored)", maxVariants+1, got, want)
	}
	if o := s.Peek("/many"); o == nil || len(o.Variants) != maxVariants || slices.ContainsFunc(o.Variants, func(e *Entry) bool { return e.VaryValues[0] == "1" }) {
		t.Errorf("L1 after a %dth variant: %+v, want %d variants without 1", maxVariants+1, o, maxVariants)
	}
	for i := maxVariants + 1; i < 3*maxVariants; i++ {
		set(i)
		if n, err := rdb.HLen(ctx, RedisKey("/many")).Result(); err != nil || n != maxVariants+1 { // and the order field
			t.Fatalf("after variant %d: HLEN = %d, %v; want %d", i, n, err, maxVariants+1)
		}
	}
	if got, want := stored(), upTo(2*maxVariants, 3*maxVariants-1); !slices.Equal(got, want) {
		t.Errorf("L2 after %d variants holds %v, want the last %d: %v", 3*maxVariants, got, maxVariants, want)
	}
}

// A variant a reader deleted as corrupt drops out of the order, and does not cost another variant its place.
func TestADeletedVariantLeavesTheOrder(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	s := newStore(t, rdb)
	ctx := t.Context()
	var es []*Entry
	for i := range maxVariants {
		e := testEntry("/order", "v"+strconv.Itoa(i))
		e.Vary, e.VaryValues = []string{"X-Client"}, []string{strconv.Itoa(i)}
		es = append(es, e)
		if err := s.Set(ctx, e); err != nil {
			t.Fatalf("Set(%d): %v", i, err)
		}
	}
	rk := RedisKey("/order")
	rdb.HSet(ctx, rk, variantField(es[5]), "garbage")
	s.Forget("/order")
	if _, _, err := s.Get(ctx, "/order"); err != nil { // drops and deletes variant 5
		t.Fatalf("Get: %v", err)
	}
	extra := testEntry("/order", "extra")
	extra.Vary, extra.VaryValues = []string{"X-Client"}, []string{"extra"}
	if err := s.Set(ctx, extra); err != nil {
		t.Fatalf("Set(extra): %v", err)
	}
	fields := rdb.HKeys(ctx, rk).Val()
	for i, e := range es {
		if has := slices.Contains(fields, variantField(e)); has != (i != 5) {
			t.Errorf("variant %d stored = %v after one was deleted and another added, want %v", i, has, i != 5)
		}
	}
	if order := strings.Fields(rdb.HGet(ctx, rk, "o").Val()); len(order) != maxVariants || order[len(order)-1] != variantField(extra) {
		t.Errorf("order field = %q, want %d fields ending with the newest", order, maxVariants)
	}
}

// Field names in Redis are digests: no Vary'd request value (a language, a token, a cookie
// digest) appears in them in clear.
func TestVariantFieldsCarryNoRequestText(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	s := newStore(t, rdb)
	ctx := t.Context()
	values := [][]string{{"fr-CH", "Bearer s3cr3t-t0ken"}, {"fr-CH", ""}, {"", "Bearer s3cr3t-t0ken"}, {"", ""}}
	for _, v := range values {
		e := testEntry("/vary", strings.Join(v, "|"))
		e.Vary, e.VaryValues = []string{"Accept-Language", "X-Api-Key"}, v
		if err := s.Set(ctx, e); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	fieldRE := regexp.MustCompile(`^v:([0-9a-f]{32})?$`)
	fields := rdb.HKeys(ctx, RedisKey("/vary")).Val()
	if len(fields) != len(values)+1 {
		t.Errorf("hash fields %q, want %d variants and the order", fields, len(values))
	}
	for _, f := range fields {
		if f != "o" && f != "g" && !fieldRE.MatchString(f) {
			t.Errorf("hash field %q, want v:<32 hex>", f)
		}
	}
	for _, text := range []string{"fr", "s3cr3t", "Bearer", "Accept", "Api"} {
		if o := rdb.HGet(ctx, RedisKey("/vary"), "o").Val(); strings.Contains(strings.Join(fields, " ")+o, text) {
			t.Errorf("field names or order carry %q in clear: %q %q", text, fields, o)
		}
	}
	// Different lists never share a field, however their parts are cut.
	a, b := testEntry("/x", ""), testEntry("/x", "")
	a.Vary, a.VaryValues = []string{"A", "B"}, []string{"x", ""}
	b.Vary, b.VaryValues = []string{"A"}, []string{"x\x01B\x00"}
	if variantField(a) == variantField(b) {
		t.Errorf("variantField of %q=%q and %q=%q agree", a.Vary, a.VaryValues, b.Vary, b.VaryValues)
	}
}

func TestDeleteRefusesAFetchThatBeganBefore(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	a, b := newStore(t, rdb), newStore(t, srv.Client())
	ctx := t.Context()
	if err := a.Set(ctx, testEntry("/p", "old")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, tier, err := b.Get(ctx, "/p"); tier != L2 || err != nil {
		t.Fatalf("b.Get = %v, %v; want an l2 hit", tier, err)
	}
	o, _, _ := a.Get(ctx, "/p")
	began := o.Gen // a refresh begins under this generation...

	if err := a.Delete(ctx, "/p"); err != nil { // ...a purge lands...
		t.Fatalf("Delete: %v", err)
	}
	b.Forget("/p") // the coherence message
	for name, s := range map[string]*Store{"a": a, "b": b} {
		o, _, err := s.Get(ctx, "/p")
		if err != nil || !isMiss(o) {
			t.Errorf("%s.Get after Delete = %+v, %v; want nothing to serve", name, o, err)
		}
		if o != nil && o.Gen <= began {
			t.Errorf("%s.Get after Delete: Gen = %d, want > %d", name, o.Gen, began)
		}
	}

	for name, s := range map[string]*Store{"a": a, "b": b} { // ...and the refresh finishes.
		late := testEntry("/p", "old, refetched")
		late.Gen = began
		if err := s.Set(ctx, late); !errors.Is(err, ErrStale) {
			t.Errorf("%s.Set with the generation before Delete = %v, want ErrStale", name, err)
		}
		if o := s.Peek("/p"); !isMiss(o) {
			t.Errorf("%s.Peek after the refused Set = %+v, want nothing to serve", name, o)
		}
	}
	m, err := rdb.HGetAll(ctx, RedisKey("/p")).Result()
	if err != nil || len(m) != 1 || m["g"] != strconv.FormatUint(began+1, 10) {
		t.Errorf("HGETALL after refused Sets = %q, %v; want only the generation %d", m, err, began+1)
	}
	if ttl := rdb.PTTL(ctx, RedisKey("/p")).Val(); ttl <= 0 || ttl > 2*time.Minute {
		t.Errorf("tombstone PTTL = %v, want (0, 2m]: it must expire", ttl)
	}

	// A fetch that began after the purge stores normally.
	o, _, _ = a.Get(ctx, "/p")
	fresh := testEntry("/p", "new")
	fresh.Gen = o.Gen
	if err := a.Set(ctx, fresh); err != nil {
		t.Fatalf("Set with the new generation: %v", err)
	}
	b.Forget("/p")
	o, tier, err := b.Get(ctx, "/p")
	if tier != L2 || err != nil || entryDiff(only(o), fresh) != "" {
		t.Errorf("b.Get after the new Set = %+v, %v, %v; want the new entry from l2", o, tier, err)
	}
}

// A fetch may outlive the hash it began under (the entry's lifetime ended meanwhile, or a short
// tombstone expired). The generation it stores must not go back to 0, or the next purge would bump it
// to a value the in-flight generation already has: the purge would not make the entry stale, and a
// fetch that began before it could write the old body back.
func TestAGenerationOutlivesItsExpiredHash(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	// A soft purge keeps the hash a tombstone's lifetime: a short one, so it expires in the test.
	opts := func(rdb redis.UniversalClient) Options {
		return Options{L1MaxBytes: 64 << 20, L1MaxTTL: time.Minute, Redis: rdb, Tombstone: time.Second}
	}
	a, b := newStoreWith(t, opts(rdb)), newStoreWith(t, opts(srv.Client()))
	ctx := t.Context()
	short := testEntry("/g", "v0")
	short.Fresh, short.StaleWhileRevalidate, short.StaleIfError = time.Second, 0, 0
	if err := a.Set(ctx, short); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, err := a.MarkStale(ctx, "/g"); err != nil { // a soft purge: generation 1...
		t.Fatalf("MarkStale: %v", err)
	}
	o, _, err := a.Get(ctx, "/g")
	if err != nil || o == nil {
		t.Fatalf("Get after MarkStale = %+v, %v", o, err)
	}
	began := o.Gen // ...under which a refresh begins;
	waitFor(t, 3*time.Second, func() bool { return rdb.Exists(ctx, RedisKey("/g")).Val() == 0 })
	v1 := testEntry("/g", "v1") // it finishes after the hash expired.
	v1.Gen = began
	if err := a.Set(ctx, v1); err != nil {
		t.Fatalf("Set of the refresh: %v", err)
	}
	if o, _, err := b.Get(ctx, "/g"); err != nil || o == nil || o.Gen != began {
		t.Fatalf("b.Get = %+v, %v; want the object at the generation %d its entry was filled under", o, err, began)
	}

	// Another soft purge must make v1 stale everywhere.
	if _, err := a.MarkStale(ctx, "/g"); err != nil {
		t.Fatalf("second MarkStale: %v", err)
	}
	b.Forget("/g")
	if o, _, err := b.Get(ctx, "/g"); err != nil || only(o) == nil || only(o).Gen >= o.Gen {
		t.Errorf("b.Get after the second MarkStale = %+v, %v; want v1 older than its object", o, err)
	}

	// A clear must refuse a fetch that began under v1's generation.
	if err := a.Delete(ctx, "/g"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	late := testEntry("/g", "v1, refetched before the clear")
	late.Gen = began
	if err := a.Set(ctx, late); !errors.Is(err, ErrStale) {
		t.Errorf("Set with a generation from before the clear = %v, want ErrStale", err)
	}
}

func TestDeleteWithoutRedisRefusesAFetchThatBeganBefore(t *testing.T) {
	s := newStore(t, nil)
	ctx := t.Context()
	if err := s.Set(ctx, testEntry("/p", "old")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if err := s.Delete(ctx, "/p"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if o, _, err := s.Get(ctx, "/p"); !isMiss(o) || err != nil {
		t.Errorf("Get after Delete = %+v, %v; want nothing to serve", o, err)
	}
	if err := s.Set(ctx, testEntry("/p", "old, refetched")); !errors.Is(err, ErrStale) {
		t.Errorf("Set with the generation before Delete = %v, want ErrStale", err)
	}
	e := testEntry("/p", "new")
	e.Gen = 1
	if err := s.Set(ctx, e); err != nil {
		t.Errorf("Set with the new generation = %v", err)
	}
	if got := only(s.Peek("/p")); got != e {
		t.Errorf("Peek = %+v, want the new entry", got)
	}
}

func TestMarkStaleKeepsTheEntryButBumpsTheGeneration(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newStore(t, srv.Client()), newStore(t, srv.Client())
	ctx := t.Context()
	old := testEntry("/s", "old")
	if err := a.Set(ctx, old); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, tier, err := b.Get(ctx, "/s"); tier != L2 || err != nil {
		t.Fatalf("b.Get = %v, %v; want an l2 hit", tier, err)
	}
	if found, err := a.MarkStale(ctx, "/s"); !found || err != nil {
		t.Fatalf("MarkStale = %v, %v; want true, nil", found, err)
	}
	b.Forget("/s")
	for name, s := range map[string]*Store{"a": a, "b": b} {
		o, _, err := s.Get(ctx, "/s")
		e := only(o)
		if err != nil || e == nil {
			t.Fatalf("%s.Get after MarkStale = %+v, %v; want the entry, still readable", name, o, err)
		}
		if string(e.Body) != "old" || e.Gen != 0 || o.Gen != 1 {
			t.Errorf("%s.Get after MarkStale: body %q, e.Gen %d, o.Gen %d; want old, 0 < 1", name, e.Body, e.Gen, o.Gen)
		}
	}

	late := testEntry("/s", "refetched before the purge") // Gen 0
	if err := a.Set(ctx, late); !errors.Is(err, ErrStale) {
		t.Errorf("Set with the generation before MarkStale = %v, want ErrStale", err)
	}
	fresh := testEntry("/s", "new")
	fresh.Gen = 1
	if err := a.Set(ctx, fresh); err != nil {
		t.Fatalf("Set with the new generation: %v", err)
	}
	b.Forget("/s")
	for name, s := range map[string]*Store{"a": a, "b": b} {
		o, _, err := s.Get(ctx, "/s")
		if e := only(o); err != nil || e == nil || string(e.Body) != "new" || e.Gen != o.Gen {
			t.Errorf("%s.Get after the new Set = %+v, %v; want the new entry at the object's generation", name, o, err)
		}
	}

	if found, err := a.MarkStale(ctx, "/never-stored"); found || err != nil {
		t.Errorf("MarkStale(unknown key) = %v, %v; want false, nil", found, err)
	}
	if n := srv.Client().Exists(ctx, RedisKey("/never-stored")).Val(); n != 0 {
		t.Errorf("MarkStale(unknown key) created it in Redis")
	}
}

func TestCorruptL2VariantIsDroppedAndDeleted(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	s := newStore(t, rdb)
	ctx := t.Context()
	good := encode(testEntry("/c", "good"))
	tests := []struct {
		name  string
		value []byte
	}{
		{"garbage", []byte("not an entry")},
		{"empty", nil},
		{"another key's entry", encode(testEntry("/other", "swapped"))},
		{"another codec version", withByte(good, 0, codecVersion+1)},
		{"a flipped byte", func() []byte { b := bytes.Clone(good); b[len(b)/2] ^= 0x20; return b }()},
		{"truncated", good[:len(good)-1]},
	}
	for _, tt := range tests {
		key := "/c" // "another key's entry" names /other: a swapped or colliding hash
		rk := RedisKey(key)
		rdb.Del(ctx, rk)
		s.Forget(key)
		if err := rdb.HSet(ctx, rk, "v:", tt.value).Err(); err != nil {
			t.Fatalf("%s: HSET: %v", tt.name, err)
		}
		o, _, err := s.Get(ctx, key)
		if err != nil || !isMiss(o) {
			t.Errorf("%s: Get = %+v, %v; want nothing to serve and no error", tt.name, o, err)
		}
		if n, err := rdb.HExists(ctx, rk, "v:").Result(); n || err != nil {
			t.Errorf("%s: HEXISTS v: = %v, %v; want the corrupt field deleted", tt.name, n, err)
		}
	}

	// A corrupt variant next to a good one: the good one is served.
	rk := RedisKey("/c")
	rdb.Del(ctx, rk)
	s.Forget("/c")
	en := testEntry("/c", "hello")
	en.Vary, en.VaryValues = []string{"Accept-Language"}, []string{"en"}
	if err := s.Set(ctx, en); err != nil {
		t.Fatalf("Set: %v", err)
	}
	de := testEntry("/c", "hallo")
	de.Vary, de.VaryValues = []string{"Accept-Language"}, []string{"de"}
	rdb.HSet(ctx, rk, variantField(de), "garbage")
	s.Forget("/c")
	o, tier, err := s.Get(ctx, "/c")
	if tier != L2 || err != nil || entryDiff(only(o), en) != "" {
		t.Errorf("Get with one corrupt variant = %+v, %v, %v; want the good variant alone", o, tier, err)
	}
	fields := rdb.HKeys(ctx, rk).Val()
	slices.Sort(fields)
	if want := []string{"o", variantField(en)}; !slices.Equal(fields, want) {
		t.Errorf("hash fields after Get = %q, want only %q", fields, want)
	}
}

func TestL1IsBoundedByBytes(t *testing.T) {
	s := newStoreWith(t, Options{L1MaxBytes: 1 << 20, L1MaxTTL: time.Hour})
	body := strings.Repeat("x", 100<<10)
	for i := range 50 {
		e := testEntry("/big/"+strconv.Itoa(i), body)
		e.ETag = `"big"`
		if err := s.Set(t.Context(), e); err != nil {
			t.Fatalf("Set(%d): %v", i, err)
		}
	}
	var objects int
	var weight uint64
	waitFor(t, 3*time.Second, func() bool { // otter evicts asynchronously
		objects, weight = s.L1Stats()
		return weight <= 1<<20 && objects <= 10
	})
	if objects < 1 || weight < 100<<10 {
		t.Errorf("L1Stats = %d objects, %d bytes; want 1 to 10 objects of 100 KiB", objects, weight)
	}
}

func TestL1CopyExpiresAfterL1MaxTTL(t *testing.T) {
	srv := redistest.Start(t)
	s := newStoreWith(t, Options{L1MaxBytes: 1 << 20, L1MaxTTL: 200 * time.Millisecond, Redis: srv.Client()})
	e := testEntry("/t", "fresh for an hour")
	if err := s.Set(t.Context(), e); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, tier, _ := s.Get(t.Context(), "/t"); tier != L1 {
		t.Fatalf("Get right after Set: tier %v, want l1", tier)
	}
	start := time.Now()
	waitFor(t, 3*time.Second, func() bool { return s.Peek("/t") == nil })
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("L1 copy dropped after %v, want about 200ms", d)
	}
	o, tier, err := s.Get(t.Context(), "/t")
	if tier != L2 || err != nil || entryDiff(only(o), e) != "" {
		t.Errorf("Get after L1MaxTTL = %+v, %v, %v; want the entry from l2", o, tier, err)
	}
}

// An object promoted from L2 whose variants have all expired must not stay in L1: otter keeps an
// entry forever when its expiry calculator returns a non-positive duration.
func TestExpiredL2ObjectIsNotKeptInL1(t *testing.T) {
	srv := redistest.Start(t)
	a := newStore(t, srv.Client())
	b := newStoreWith(t, Options{L1MaxBytes: 1 << 20, L1MaxTTL: 200 * time.Millisecond, Redis: srv.Client()})
	ctx := t.Context()

	if err := a.Set(ctx, testEntry("/x", "v1")); err != nil { // the hash now lives for hours...
		t.Fatalf("Set v1: %v", err)
	}
	short := testEntry("/x", "v2") // ...and keeps doing so when a short-lived version replaces v1
	short.Fresh, short.StaleWhileRevalidate, short.StaleIfError = 300*time.Millisecond, 0, 0
	if err := a.Set(ctx, short); err != nil {
		t.Fatalf("Set v2: %v", err)
	}
	waitFor(t, 2*time.Second, func() bool { return time.Now().After(short.Expires()) })
	o, tier, err := b.Get(ctx, "/x")
	if e := only(o); tier != L2 || err != nil || e == nil || string(e.Body) != "v2" {
		t.Fatalf("b.Get = %+v, %v, %v; want the expired v2 from l2", o, tier, err)
	}

	v3 := testEntry("/x", "v3")
	if err := a.Set(ctx, v3); err != nil {
		t.Fatalf("Set v3: %v", err)
	}
	waitFor(t, 3*time.Second, func() bool {
		o, _, _ := b.Get(ctx, "/x")
		e := only(o)
		return e != nil && string(e.Body) == "v3"
	})
}

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
		if n := rdb.Exists(t.Context(), RedisKey(key)).Val(); n != 0 {
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
	waitFor(t, 3*time.Second, func() bool { return s.Peek("/short") == nil })
}

func TestReloadReplacesTheL1Copy(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newStore(t, srv.Client()), newStore(t, srv.Client())
	ctx := t.Context()
	if err := a.Set(ctx, testEntry("/r", "v1")); err != nil {
		t.Fatalf("Set: %v", err)
	}
	b.Get(ctx, "/r")
	v2 := testEntry("/r", "v2")
	if err := a.Set(ctx, v2); err != nil {
		t.Fatalf("Set v2: %v", err)
	}
	if o, _ := b.GetL2(ctx, "/r"); entryDiff(only(o), v2) != "" {
		t.Errorf("b.GetL2 = %+v, want v2", o)
	}
	if e := only(b.Peek("/r")); e == nil || string(e.Body) != "v1" {
		t.Errorf("b.Peek after GetL2 = %+v, want v1 still: GetL2 must not touch l1", e)
	}
	o, err := b.Reload(ctx, "/r")
	if err != nil || entryDiff(only(o), v2) != "" || b.Peek("/r") != o {
		t.Errorf("b.Reload = %+v, %v; want v2, now in l1", o, err)
	}
	srv.Client().Del(ctx, RedisKey("/r"))
	if o, err := b.Reload(ctx, "/r"); o != nil || err != nil || b.Peek("/r") != nil {
		t.Errorf("b.Reload of a key gone from L2 = %+v, %v; want nil, and l1 dropped", o, err)
	}
}

func BenchmarkStorePeek(b *testing.B) {
	s := newStore(b, nil)
	if err := s.Set(b.Context(), testEntry("/api/prices?pair=ALGO-USD", "body")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if s.Peek("/api/prices?pair=ALGO-USD") == nil {
			b.Fatal("miss")
		}
	}
}

// A soft purge keeps the key's generation at least a tombstone's lifetime, like a clear: a fetch
// that began before it and stores after the variants' own lifetime ended is still refused
// (security review: the generation expired with the hash and the pre-purge body came back).
func TestASoftPurgeKeepsTheGenerationAsLongAsAClear(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	s := newStoreWith(t, Options{L1MaxBytes: 64 << 20, L1MaxTTL: time.Minute, Redis: rdb, Tombstone: time.Minute})
	ctx := context.Background()
	old := testEntry("/p", "v1")
	old.Fresh, old.StaleWhileRevalidate, old.StaleIfError = 0, 0, 1500*time.Millisecond
	old.Stored = time.Now()
	if err := s.Set(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkStale(ctx, "/p"); err != nil {
		t.Fatal(err)
	}
	if ttl := rdb.PTTL(ctx, RedisKey("/p")).Val(); ttl < 59*time.Second {
		t.Fatalf("after a soft purge the hash lives %v, want at least the tombstone (1m): its generation would expire with it", ttl)
	}
}

// The variants of one URL together weigh at most ObjectMaxBytes, in L1 and in L2: a client cycling
// through the values of a Vary'd field cannot make one object heavier, nor every Redis read of it
// longer (security review: 32 variants of 8 MiB made each read a 256 MiB HGETALL that timed out
// and flushed L1 through the circuit breaker).
func TestTheVariantsOfOneURLAreBoundedInBytes(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	s := newStoreWith(t, Options{L1MaxBytes: 256 << 20, L1MaxTTL: time.Minute, Redis: rdb, ObjectMaxBytes: 4 << 20})
	ctx := t.Context()
	body := strings.Repeat("b", 1<<20)
	for i := range 10 {
		e := testEntry("/big", body)
		e.ETag = `"big"`
		e.Vary, e.VaryValues = []string{"Origin"}, []string{"https://site" + strconv.Itoa(i) + ".example"}
		if err := s.Set(ctx, e); err != nil {
			t.Fatalf("Set(variant %d): %v", i, err)
		}
	}
	var l2 int64
	fields, err := rdb.HGetAll(ctx, RedisKey("/big")).Result()
	if err != nil {
		t.Fatal(err)
	}
	for f, v := range fields {
		if strings.HasPrefix(f, "v:") {
			l2 += int64(len(v))
		}
	}
	if l2 > 4<<20 || l2 < 3<<20 {
		t.Errorf("L2 holds %d bytes of variants, want at most the 4 MiB bound (and the newest 3)", l2)
	}
	o := s.Peek("/big")
	if o == nil || o.Size() > 4<<20+1024 || len(o.Variants) < 3 {
		t.Fatalf("L1 object: %d variants, %d bytes; want at most 4 MiB", len(o.Variants), o.Size())
	}
	if got := o.Variants[0].VaryValues[0]; got != "https://site9.example" {
		t.Errorf("the newest variant is %q, want site9's (the newest is always kept)", got)
	}
	if fresh, err := newStore(t, rdb).GetL2(ctx, "/big"); err != nil || fresh.Variant(func(string) string { return "https://site9.example" }) == nil {
		t.Errorf("another instance does not find the newest variant in L2: %v", err)
	}
}
