package httpcache

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parseTests is shared by TestParseCacheControl and the seeds of FuzzParseCacheControl.
// want is the parse result written back as a Cache-Control value by format.
var parseTests = []struct {
	name, in, want string
}{
	{"empty is nothing", "", ""},
	{"the common case parses", "public, max-age=60, stale-while-revalidate=30", "public, max-age=60, stale-while-revalidate=30"},
	{"names are case-insensitive", "PUBLIC, Max-Age=60, S-MAXAGE=5", "public, max-age=60, s-maxage=5"},
	{"whitespace and empty elements are skipped", " \tmax-age=60 ,, ,public\t ", "public, max-age=60"},
	{"whitespace around = is tolerated", "max-age = 60", "max-age=60"},
	{"every boolean directive is read", "no-store, no-cache, private, public, must-revalidate, proxy-revalidate, no-transform, immutable, only-if-cached",
		"no-store, no-cache, private, public, must-revalidate, proxy-revalidate, no-transform, immutable, only-if-cached"},
	{"every duration directive is read", "max-age=1, s-maxage=2, stale-while-revalidate=3, stale-if-error=4, max-stale=5, min-fresh=6",
		"max-age=1, s-maxage=2, stale-while-revalidate=3, stale-if-error=4, max-stale=5, min-fresh=6"},
	{"unknown directives are ignored", "x-foo, community=\"UCI\", public, ext=1", "public"},

	// Quoted strings.
	{"RFC 9111 §5.2: a quoted delta-seconds is accepted (recipients ought to accept both forms)", `max-age="60"`, "max-age=60"},
	{"qualified no-cache lists canonical fields and leaves NoCache false", `no-cache="set-cookie, x-foo"`, `no-cache="Set-Cookie,X-Foo"`},
	{"qualified private lists canonical fields and leaves Private false", `private="authorization", max-age=60`, `private="Authorization", max-age=60`},
	{"commas inside quotes do not split", `no-cache="A,B", max-age=5`, `no-cache="A,B", max-age=5`},
	{"commas inside an unknown quoted argument do not split", `foo="a, max-age=5", max-age=10`, "max-age=10"},
	{"an escaped quote does not end a quoted string", `foo="a\", max-age=5", max-age=10`, "max-age=10"},
	{"a quoted-pair is unescaped", `no-cache="Set\-Cookie"`, `no-cache="Set-Cookie"`},
	{"a token argument qualifies no-cache", "no-cache=Set-Cookie", `no-cache="Set-Cookie"`},
	{"qualified field lists merge without duplicates", `no-cache="a, b", no-cache="B, c", no-cache="a"`, `no-cache="A,B,C"`},
	{"qualified and unqualified no-cache may both appear", `no-cache, no-cache="Set-Cookie"`, `no-cache, no-cache="Set-Cookie"`},
	{"empty list elements in a qualified form are skipped", `private=", X-Foo,,"`, `private="X-Foo"`},
	{"a qualified form naming no field is unqualified", `no-cache="", private=" , "`, "no-cache, private"},
	{"an unterminated quote makes no-cache unqualified and swallows the rest", `no-cache="Set-Cookie, max-age=60`, "no-cache"},
	{"a qualified list with a non-token is unqualified", `private="Set Cookie"`, "private"},
	{"text after a quoted argument makes it malformed", `no-cache="a" b, max-age=5`, "no-cache, max-age=5"},
	{"an empty argument makes no-cache unqualified", "no-cache=", "no-cache"},

	// delta-seconds.
	{"a repeated max-age with the same value stands", "max-age=60, max-age=60", "max-age=60"},
	{"a repeated max-age with different values is 0", "max-age=60, max-age=30", "max-age=0"},
	{"a conflicting max-age stays 0", "max-age=60, max-age=30, max-age=60", "max-age=0"},
	{"a repeated s-maxage with a malformed value is 0", "s-maxage=10, s-maxage=abc", "s-maxage=0"},
	{"a non-numeric max-age is 0", "max-age=abc", "max-age=0"},
	{"a max-age without a value is 0", "max-age", "max-age=0"},
	{"an empty max-age is 0", "max-age=, public", "public, max-age=0"},
	{"a negative max-age is 0", "max-age=-1", "max-age=0"},
	{"a signed max-age is 0", "max-age=+5", "max-age=0"},
	{"a fractional max-age is 0", "max-age=1.5", "max-age=0"},
	{"a max-age with a parameter is 0", "max-age=60;foo", "max-age=0"},
	{"a max-age with an unterminated quote is 0", `max-age="60`, "max-age=0"},
	{"leading zeros are fine", "max-age=0060", "max-age=60"},
	{"the largest exact delta is kept", "max-age=2147483647", "max-age=2147483647"},
	{"the cap itself is kept", "s-maxage=2147483648", "s-maxage=2147483648"},
	{"an overflowing delta is capped at 2^31", "max-age=99999999999999999999999999", "max-age=2147483648"},
	{"capped duplicates agree", "max-age=2147483649, max-age=99999999999", "max-age=2147483648"},
	{"malformed stale windows are ignored", "stale-while-revalidate=abc, stale-if-error, max-age=5", "max-age=5"},
	{"repeated stale windows keep the smallest", "stale-while-revalidate=30, stale-while-revalidate=10, stale-if-error=5, stale-if-error=50",
		"stale-while-revalidate=10, stale-if-error=5"},
	{"a bare max-stale means any staleness", "max-stale", "max-stale"},
	{"max-stale with a value is that value", "max-stale, max-stale=30", "max-stale=30"},
	{"a malformed max-stale is ignored", "max-stale=x", ""},
	{"repeated min-fresh keeps the largest", "min-fresh=5, min-fresh=9, min-fresh=x", "min-fresh=9"},

	// Arguments on boolean directives.
	{"restrictive directives count with an argument", `no-store="x", must-revalidate=1, proxy-revalidate=1, no-transform=1, only-if-cached=1`,
		"no-store, must-revalidate, proxy-revalidate, no-transform, only-if-cached"},
	{"widening directives do not count with an argument", "public=yes, immutable=1", ""},

	// Garbage.
	{"a name with a space is not a directive", "max age=60", ""},
	{"a quoted name is not a directive", `"max-age"=60`, ""},
	{"non-ASCII letters do not fold to ASCII", "ſ-maxage=60, no-ſtore, max-age=5", "max-age=5"},
	{"only commas is nothing", ",,,", ""},
	{"binary garbage is nothing", "\"=,=;\x00\xff\\", ""},
	{"a semicolon list is one unknown directive", "public; max-age=60", ""},
	{"a trailing backslash in quotes is unterminated", `no-cache="a\`, "no-cache"},
}

func TestParseCacheControl(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := format(ParseCacheControl(tt.in)); got != tt.want {
				t.Errorf("ParseCacheControl(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseCacheControlLeavesAbsentDurationsUnset(t *testing.T) {
	want := CacheControl{
		MaxAge: Unset, SMaxAge: Unset, StaleWhileRevalidate: Unset,
		StaleIfError: Unset, MaxStale: Unset, MinFresh: Unset,
		Public: true,
	}
	if got := ParseCacheControl("public"); !reflect.DeepEqual(got, want) {
		t.Errorf("ParseCacheControl(%q) = %+v, want %+v", "public", got, want)
	}
}

func TestParseCacheControlDoesNotAllocateWithoutQuotes(t *testing.T) {
	for _, in := range []string{
		"public, max-age=60, stale-while-revalidate=30",
		"no-cache, NO-STORE, s-maxage=99999999999, max-age=x, x-unknown=1, max-stale",
	} {
		if n := testing.AllocsPerRun(100, func() { sinkCC = ParseCacheControl(in) }); n != 0 {
			t.Errorf("ParseCacheControl(%q) allocates %v times, want 0", in, n)
		}
	}
}

func FuzzParseCacheControl(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		cc := ParseCacheControl(in) // must not panic
		for name, d := range map[string]time.Duration{
			"MaxAge": cc.MaxAge, "SMaxAge": cc.SMaxAge, "StaleWhileRevalidate": cc.StaleWhileRevalidate,
			"StaleIfError": cc.StaleIfError, "MaxStale": cc.MaxStale, "MinFresh": cc.MinFresh,
		} {
			if d != Unset && (d < 0 || d > maxDelta) && !(name == "MaxStale" && d == maxStaleAny) {
				t.Errorf("ParseCacheControl(%q).%s = %v, want Unset or within [0, %v]", in, name, d, maxDelta)
			}
		}
		for _, f := range append(cc.NoCacheFields, cc.PrivateFields...) {
			if !isToken(f) {
				t.Errorf("ParseCacheControl(%q) lists field %q, want a token", in, f)
			}
		}
		// Directive names are case-insensitive and field names canonical, so ASCII case never matters.
		if upper := ParseCacheControl(upperASCII(in)); !reflect.DeepEqual(upper, cc) {
			t.Errorf("ParseCacheControl(upper(%q)) = %+v, want %+v", in, upper, cc)
		}
		// Writing the result back and parsing it again gives the same result.
		if again := ParseCacheControl(format(cc)); !reflect.DeepEqual(again, cc) {
			t.Errorf("ParseCacheControl(format(ParseCacheControl(%q))) = %+v, want %+v", in, again, cc)
		}
	})
}

var sinkCC CacheControl

func BenchmarkParseCacheControl(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkCC = ParseCacheControl("public, max-age=60, stale-while-revalidate=30")
	}
}

// format writes cc back as a Cache-Control value in a fixed order.
func format(cc CacheControl) string {
	var parts []string
	flag := func(on bool, name string) {
		if on {
			parts = append(parts, name)
		}
	}
	fields := func(names []string, name string) {
		if names != nil {
			parts = append(parts, name+`="`+strings.Join(names, ",")+`"`)
		}
	}
	delta := func(d time.Duration, name string) {
		switch d {
		case Unset:
		case maxStaleAny:
			parts = append(parts, name)
		default:
			parts = append(parts, name+"="+strconv.FormatInt(int64(d/time.Second), 10))
		}
	}
	flag(cc.NoStore, "no-store")
	flag(cc.NoCache, "no-cache")
	fields(cc.NoCacheFields, "no-cache")
	flag(cc.Private, "private")
	fields(cc.PrivateFields, "private")
	flag(cc.Public, "public")
	flag(cc.MustRevalidate, "must-revalidate")
	flag(cc.ProxyRevalidate, "proxy-revalidate")
	flag(cc.NoTransform, "no-transform")
	flag(cc.Immutable, "immutable")
	flag(cc.OnlyIfCached, "only-if-cached")
	delta(cc.MaxAge, "max-age")
	delta(cc.SMaxAge, "s-maxage")
	delta(cc.StaleWhileRevalidate, "stale-while-revalidate")
	delta(cc.StaleIfError, "stale-if-error")
	delta(cc.MaxStale, "max-stale")
	delta(cc.MinFresh, "min-fresh")
	return strings.Join(parts, ", ")
}

// upperASCII upper-cases ASCII letters only, so no byte changes class.
func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}
