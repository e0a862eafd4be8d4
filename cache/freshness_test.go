package cache

import (
	"net/http"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// TestHTTPDate is RFC 9110 section 5.6.7 as RFC 9111 section 4.2.1 reads
// Expires: IMF-fixdate and the two obsolete forms; anything else is
// invalid, which for Expires means "already expired".
func TestHTTPDate(t *testing.T) {
	tests := []struct {
		rule, in string
		ok       bool
	}{
		{"5.6.7: IMF-fixdate", "Thu, 18 Aug 2050 02:01:18 GMT", true},
		{"5.6.7: 32-bit overflow year is fine", "Tue, 19 Jan 2038 14:14:08 GMT", true},
		{"5.6.7: obsolete RFC 850 form", "Thursday, 18-Aug-50 02:01:18 GMT", true},
		{"5.6.7: obsolete asctime form", "Thu Aug  8 02:01:18 2050", true},
		{"5.6.7: case of GMT is not significant to us", "Thu, 18 Aug 2050 02:01:18 gMT", true},
		{"5.6.7: UTC is not GMT", "Thu, 18 Aug 2050 02:01:18 UTC", false},
		{"5.6.7: other zones are invalid", "Thu, 18 Aug 2050 02:01:18 AEST", false},
		{"5.6.7: two-digit year in IMF-fixdate", "Thu, 18 Aug 50 02:01:18 GMT", false},
		{"5.6.7: missing comma", "Thu 18 Aug 2050 02:01:18 GMT", false},
		{"5.6.7: doubled spaces", "Thu, 18  Aug  2050 02:01:18 GMT", false},
		{"5.6.7: dashes in the date", "Thu, 18-Aug-2050 02:01:18 GMT", false},
		{"5.6.7: periods in the time", "Thu, 18 Aug 2050 02.01.18 GMT", false},
		{"5.6.7: one-digit hour", "Thu, 18 Aug 2050 2:01:18 GMT", false},
		{"4.2.1: the value 0", "0", false},
		{"4.2.1: empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			if _, ok := parseHTTPDate(tt.in); ok != tt.ok {
				t.Errorf("parseHTTPDate(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			}
		})
	}
}

// TestFreshnessLifetime is RFC 9111 section 4.2.1 (and 4.2.2 for the
// heuristic).
func TestFreshnessLifetime(t *testing.T) {
	date := httpDate(t0)
	tests := []struct {
		rule      string
		status    int
		h         http.Header
		shared    bool
		want      time.Duration
		heuristic bool
	}{
		{"4.2.1: s-maxage first in a shared cache", 200, http.Header{"Cache-Control": {"s-maxage=5, max-age=10"}, "Date": {date}}, true, 5 * time.Second, false},
		{"4.2.1: s-maxage ignored by a private cache", 200, http.Header{"Cache-Control": {"s-maxage=5, max-age=10"}, "Date": {date}}, false, 10 * time.Second, false},
		{"4.2.1: max-age wins over Expires", 200, http.Header{"Cache-Control": {"max-age=10"}, "Expires": {httpDate(t0.Add(time.Hour))}, "Date": {date}}, true, 10 * time.Second, false},
		{"4.2.1: Expires minus Date", 200, http.Header{"Expires": {httpDate(t0.Add(time.Hour))}, "Date": {date}}, true, time.Hour, false},
		{"4.2.1: Expires without Date counts from the response time", 200, http.Header{"Expires": {httpDate(t0.Add(time.Minute))}}, true, time.Minute, false},
		{"4.2.1: an invalid Expires is already expired", 200, http.Header{"Expires": {"0"}, "Date": {date}}, true, 0, false},
		{"4.2.1: two Expires lines are invalid", 200, http.Header{"Expires": {httpDate(t0.Add(time.Hour)), httpDate(t0.Add(time.Hour))}, "Date": {date}}, true, 0, false},
		{"4.2.1: Expires in the past", 200, http.Header{"Expires": {httpDate(t0.Add(-time.Hour))}, "Date": {date}}, true, 0, false},
		{"4.2.1: an invalid max-age is stale", 200, http.Header{"Cache-Control": {"max-age=abc"}, "Expires": {httpDate(t0.Add(time.Hour))}, "Date": {date}}, true, 0, false},
		{"4.2.2: 10% of the time since Last-Modified", 200, http.Header{"Last-Modified": {httpDate(t0.Add(-10 * time.Hour))}, "Date": {date}}, true, time.Hour, true},
		{"4.2.2: capped at HeuristicMax", 200, http.Header{"Last-Modified": {httpDate(t0.Add(-10000 * time.Hour))}, "Date": {date}}, true, 24 * time.Hour, true},
		{"4.2.2: not for a status that is not heuristically cacheable", 500, http.Header{"Last-Modified": {httpDate(t0.Add(-10 * time.Hour))}, "Date": {date}}, true, 0, false},
		{"4.2.2: public allows it for any status", 302, http.Header{"Cache-Control": {"public"}, "Last-Modified": {httpDate(t0.Add(-10 * time.Hour))}, "Date": {date}}, true, time.Hour, true},
		{"4.2.2: a Last-Modified after Date gives nothing", 200, http.Header{"Last-Modified": {httpDate(t0.Add(time.Hour))}, "Date": {date}}, true, 0, false},
		{"4.2.2: no Last-Modified, no heuristic", 200, http.Header{"Date": {date}}, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			cc := parseDirectives(tt.h["Cache-Control"])
			f := computeFreshness(tt.status, tt.h, &cc, tt.shared, t0, t0, 24*time.Hour)
			if f.lifetime != tt.want || f.heuristic != tt.heuristic {
				t.Errorf("lifetime = %v (heuristic %v), want %v (%v)", f.lifetime, f.heuristic, tt.want, tt.heuristic)
			}
		})
	}
}

// TestAgeCalculation is RFC 9111 section 4.2.3 (and 5.1 for Age).
func TestAgeCalculation(t *testing.T) {
	tests := []struct {
		rule              string
		date              time.Time
		age               []string
		reqTime, respTime time.Time
		want              time.Duration
	}{
		{"4.2.3: apparent_age is response_time - date_value", t0.Add(-30 * time.Second), nil, t0, t0, 30 * time.Second},
		{"4.2.3: a Date in the future gives apparent_age 0", t0.Add(time.Hour), nil, t0, t0, 0},
		{"4.2.3: corrected_age_value adds the response delay", t0, []string{"10"}, t0.Add(-2 * time.Second), t0, 12 * time.Second},
		{"4.2.3: the larger of apparent and corrected", t0.Add(-100 * time.Second), []string{"10"}, t0, t0, 100 * time.Second},
		{"5.1: a non-numeric Age is ignored", t0, []string{"abc"}, t0, t0, 0},
		{"5.1: a negative Age is ignored", t0, []string{"-7200"}, t0, t0, 0},
		{"5.1: a float Age is ignored", t0, []string{"7200.0"}, t0, t0, 0},
		{"5.1: past 2^31 counts as 2^31", t0, []string{"2147483649"}, t0, t0, maxDelta * time.Second},
		{"5.1: the first member of the first line counts", t0, []string{"7200, 0"}, t0, t0, 7200 * time.Second},
		{"5.1: later lines are ignored", t0, []string{"0", "7200"}, t0, t0, 0},
		{"5.1: a parameter after the number is dropped", t0, []string{"7200;foo=bar"}, t0, t0, 7200 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := http.Header{"Date": {httpDate(tt.date)}}
			if tt.age != nil {
				h["Age"] = tt.age
			}
			f := computeFreshness(200, h, &noDirectives, true, tt.reqTime, tt.respTime, 0)
			if f.initialAge != tt.want {
				t.Errorf("corrected_initial_age = %v, want %v", f.initialAge, tt.want)
			}
		})
	}
	if got := currentAge(5*time.Second, t0, t0.Add(time.Minute)); got != 65*time.Second {
		t.Errorf("4.2.3: current_age = %v, want corrected_initial_age + resident_time = 65s", got)
	}
	if got := ageSeconds(time.Duration(1<<62) * time.Nanosecond); got != maxDelta {
		t.Errorf("5.1: Age sent = %d, want at most 2^31", got)
	}
}

// FuzzFreshness feeds arbitrary header values to the freshness and age
// computation (RFC 9111 4.2): never a panic, never a negative lifetime
// or age.
func FuzzFreshness(f *testing.F) {
	f.Add("max-age=10", "Thu, 18 Aug 2050 02:01:18 GMT", "Thu, 18 Aug 2050 02:01:18 GMT", "5", "Wed, 01 Jan 2020 00:00:00 GMT", 200)
	f.Add("s-maxage=-1", "0", "garbage", "-1", "", 999)
	f.Fuzz(func(t *testing.T, cc, expires, date, age, lastMod string, status int) {
		h := http.Header{"Cache-Control": {cc}, "Expires": {expires}, "Date": {date}, "Age": {age}, "Last-Modified": {lastMod}}
		d := parseDirectives(h["Cache-Control"])
		for _, shared := range []bool{true, false} {
			fr := computeFreshness(status, h, &d, shared, t0, t0.Add(time.Second), 24*time.Hour)
			if fr.lifetime < 0 || fr.initialAge < 0 {
				t.Fatalf("negative lifetime %v or age %v", fr.lifetime, fr.initialAge)
			}
		}
	})
}
