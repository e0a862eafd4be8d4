package cache

import (
	"reflect"
	"testing"
)

// TestDirectives follows RFC 9111 section 5.2 (and 1.2.2 for
// delta-seconds): each row cites the rule it checks.
func TestDirectives(t *testing.T) {
	tests := []struct {
		rule  string
		lines []string
		check func(d directives) bool
	}{
		{"5.2: names are case-insensitive", []string{"No-StOrE"}, func(d directives) bool { return d.noStore }},
		{"5.2: field lines combine into one list", []string{"max-age=10", "public"}, func(d directives) bool { return d.maxAge == 10 && d.public }},
		{"5.2: the quoted-string form of an argument is accepted", []string{`max-age="3600"`}, func(d directives) bool { return d.maxAge == 3600 }},
		{"5.2: a comma inside a quoted string does not split", []string{`extension="max-age=3600", max-age=1`}, func(d directives) bool { return d.maxAge == 1 }},
		{"5.2: a directive inside a quoted string is not one", []string{`max-age=1, extension="max-age=3600"`}, func(d directives) bool { return d.maxAge == 1 }},
		{"1.2.2: leading zeros are digits", []string{"max-age=003600"}, func(d directives) bool { return d.maxAge == 3600 }},
		{"1.2.2: a value past 2^31 counts as 2^31", []string{"max-age=99999999999999999999"}, func(d directives) bool { return d.maxAge == maxDelta }},
		{"1.2.2: a negative value is invalid", []string{"max-age=-1"}, func(d directives) bool { return d.maxAge == deltaInvalid }},
		{"1.2.2: a fraction is invalid", []string{"max-age=3600.5"}, func(d directives) bool { return d.maxAge == deltaInvalid }},
		{"1.2.2: letters are invalid", []string{"max-age=3600a"}, func(d directives) bool { return d.maxAge == deltaInvalid }},
		{"1.2.2: single quotes are not quotes", []string{"max-age='3600'"}, func(d directives) bool { return d.maxAge == deltaInvalid }},
		{"1.2.2: a space after = is invalid", []string{"max-age= 3600"}, func(d directives) bool { return d.maxAge == deltaInvalid }},
		{"5.2.2.1: max-age without an argument is invalid", []string{"max-age"}, func(d directives) bool { return d.maxAge == deltaInvalid }},
		{"4.2.1: a repeated directive with another value is invalid (stale)", []string{"max-age=1800, max-age=1"}, func(d directives) bool { return d.maxAge == deltaInvalid }},
		{"4.2.1: repeated on separate lines too", []string{"max-age=1", "max-age=1800"}, func(d directives) bool { return d.maxAge == deltaInvalid }},
		{"4.2.1: the same value twice is that value", []string{"max-age=5, max-age=5"}, func(d directives) bool { return d.maxAge == 5 }},
		{"5.2.1.2: max-stale without an argument accepts any staleness", []string{"max-stale"}, func(d directives) bool { return d.maxStaleAny }},
		{"5.2.1.2: max-stale with one", []string{"max-stale=30"}, func(d directives) bool { return d.maxStale == 30 && !d.maxStaleAny }},
		{"5.2.1.3: min-fresh", []string{"min-fresh=20"}, func(d directives) bool { return d.minFresh == 20 }},
		{"5.2.1.7: only-if-cached", []string{"only-if-cached"}, func(d directives) bool { return d.onlyIfCached }},
		{"5.2.2.4: no-cache with field names qualifies, not forbids", []string{`no-cache="Set-Cookie, X-A"`}, func(d directives) bool {
			return !d.noCache && reflect.DeepEqual(d.noCacheFields, []string{"set-cookie", "x-a"})
		}},
		{"5.2.2.4: no-cache without field names", []string{"no-cache"}, func(d directives) bool { return d.noCache }},
		{"5.2.2.7: private with field names", []string{`private="x-user"`}, func(d directives) bool { return !d.private && d.privateFields[0] == "x-user" }},
		{"5.2.2.10: s-maxage", []string{"s-maxage=7"}, func(d directives) bool { return d.sMaxAge == 7 }},
		{"5.2.3: unknown directives are ignored", []string{"foo, bar=baz, public"}, func(d directives) bool { return d.public }},
		{"RFC 5861: stale-while-revalidate and stale-if-error", []string{"stale-while-revalidate=5, stale-if-error=60"}, func(d directives) bool {
			return d.staleWhileRevalidate == 5 && d.staleIfError == 60
		}},
		{"RFC 8246: immutable", []string{"max-age=1, immutable"}, func(d directives) bool { return d.immutable }},
		{"5.2: empty members and stray whitespace are skipped", []string{" ,, max-age=2 ,\t"}, func(d directives) bool { return d.maxAge == 2 }},
		{"5.2: an unterminated quote swallows the rest, no panic", []string{`no-cache="a, max-age=4`}, func(d directives) bool { return d.maxAge == deltaAbsent }},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			if d := parseDirectives(tt.lines); !tt.check(d) {
				t.Errorf("parseDirectives(%q) = %+v", tt.lines, d)
			}
		})
	}
}

// TestPragma is RFC 9111 section 5.4: Pragma: no-cache counts only
// when the request has no Cache-Control.
func TestPragma(t *testing.T) {
	tests := []struct {
		rule   string
		header map[string][]string
		want   bool
	}{
		{"5.4: Pragma: no-cache alone is no-cache", map[string][]string{"Pragma": {"no-cache"}}, true},
		{"5.4: Cache-Control wins over Pragma", map[string][]string{"Pragma": {"no-cache"}, "Cache-Control": {"max-age=10"}}, false},
		{"5.4: other Pragma values mean nothing", map[string][]string{"Pragma": {"foo"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			if got := requestDirectives(tt.header).noCache; got != tt.want {
				t.Errorf("noCache = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzDirectives checks that no Cache-Control value makes the parser
// panic, and that a parsed delta is never below its sentinels.
func FuzzDirectives(f *testing.F) {
	for _, s := range []string{"max-age=10", `no-cache="a, b"`, `x="\"`, "max-stale", "s-maxage=99999999999999999999999", ",,,=,", `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := parseDirectives([]string{s, s})
		for _, v := range []delta{d.maxAge, d.sMaxAge, d.maxStale, d.minFresh, d.staleIfError, d.staleWhileRevalidate} {
			if v < deltaInvalid || v > maxDelta {
				t.Fatalf("delta %d out of range for %q", v, s)
			}
		}
	})
}
