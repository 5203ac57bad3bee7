package tiers

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swrproxy/swrproxy/internal/redistest"
)

func testVariantsOfOneKeyCoexist(t *testing.T, srv redistest.Topology) {
	a, c := newStore(t, srv.Connect(t)), newStore(t, srv.Connect(t))
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
func testOnlyTheLeastRecentlyStoredVariantIsEvicted(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
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
		if n, err := rdb.HLen(ctx, redisKey("/many")).Result(); err != nil || n != maxVariants+1 { // and the order field
			t.Fatalf("after variant %d: HLEN = %d, %v; want %d", i, n, err, maxVariants+1)
		}
	}
	if got, want := stored(), upTo(2*maxVariants, 3*maxVariants-1); !slices.Equal(got, want) {
		t.Errorf("L2 after %d variants holds %v, want the last %d: %v", 3*maxVariants, got, maxVariants, want)
	}
}

// A variant a reader deleted as corrupt drops out of the order, and does not cost another variant its place.
func testADeletedVariantLeavesTheOrder(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
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
	rk := redisKey("/order")
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
func testVariantFieldsCarryNoRequestText(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
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
	fields := rdb.HKeys(ctx, redisKey("/vary")).Val()
	if len(fields) != len(values)+1 {
		t.Errorf("hash fields %q, want %d variants and the order", fields, len(values))
	}
	for _, f := range fields {
		if f != "o" && f != "g" && !fieldRE.MatchString(f) {
			t.Errorf("hash field %q, want v:<32 hex>", f)
		}
	}
	for _, text := range []string{"fr", "s3cr3t", "Bearer", "Accept", "Api"} {
		if o := rdb.HGet(ctx, redisKey("/vary"), "o").Val(); strings.Contains(strings.Join(fields, " ")+o, text) {
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

// The variants of one URL together weigh at most ObjectMaxBytes, in L1 and in L2: a client cycling
// through the values of a Vary'd field cannot make one object heavier, nor every Redis read of it
// longer (security review: 32 variants of 8 MiB made each read a 256 MiB HGETALL that timed out
// and flushed L1 through the circuit breaker).
func testTheVariantsOfOneURLAreBoundedInBytes(t *testing.T, srv redistest.Topology) {
	rdb := srv.Connect(t)
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
	fields, err := rdb.HGetAll(ctx, redisKey("/big")).Result()
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

func TestAStoredVariantHasTheIDOfTheRequestsItServes(t *testing.T) {
	e := &Entry{Vary: []string{"Accept-Encoding", "X-Region"}, VaryValues: []string{"gzip", "eu"}}
	req := map[string]string{"Accept-Encoding": "gzip", "X-Region": "eu"}
	value := func(n string) string { return req[n] }
	if !e.Matches(value) || e.VariantID() != VariantID(e.Vary, value) {
		t.Errorf("Entry.VariantID %q, VariantID of a request it serves %q", e.VariantID(), VariantID(e.Vary, value))
	}
	// Another value, or the same values under other names, is another variant.
	other := &Entry{Vary: []string{"Accept-Encoding", "X-Region"}, VaryValues: []string{"gzip", "us"}}
	renamed := &Entry{Vary: []string{"Accept-Language", "X-Region"}, VaryValues: []string{"gzip", "eu"}}
	if e.VariantID() == other.VariantID() || e.VariantID() == renamed.VariantID() {
		t.Errorf("distinct variants share an ID: %q %q %q", e.VariantID(), other.VariantID(), renamed.VariantID())
	}
	if id := (&Entry{}).VariantID(); id != "" {
		t.Errorf("a response that varies on nothing has the ID %q, want \"\"", id)
	}
}
