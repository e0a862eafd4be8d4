package cache

import (
	"net/http"
	"strings"
	"time"
)

// heuristicStatuses are the statuses RFC 9110 section 15.1 makes
// heuristically cacheable: a cache may store them and give them a
// heuristic freshness lifetime without explicit freshness information.
func heuristicStatus(code int) bool {
	switch code {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// parseHTTPDate reads an HTTP-date (RFC 9110 section 5.6.7): the
// IMF-fixdate form exactly ("Sun, 06 Nov 1994 08:49:37 GMT"), or the
// obsolete RFC 850 and asctime forms. Anything else is invalid.
func parseHTTPDate(s string) (time.Time, bool) {
	if len(s) == 29 && s[3] == ',' && s[4] == ' ' && s[7] == ' ' && s[11] == ' ' && s[16] == ' ' &&
		s[19] == ':' && s[22] == ':' && s[25] == ' ' && strings.EqualFold(s[26:], "GMT") {
		t, err := time.Parse(time.RFC1123, s[:26]+"GMT")
		if err != nil {
			return time.Time{}, false
		}
		return t, digitsAt(s, 5, 2) && digitsAt(s, 12, 4) && digitsAt(s, 17, 2) && digitsAt(s, 20, 2) && digitsAt(s, 23, 2)
	}
	for _, layout := range []string{time.RFC850, time.ANSIC} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func digitsAt(s string, at, n int) bool {
	for i := at; i < at+n; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// headerDate returns a header's only date, or ok == false when it is
// absent, invalid, or given on more than one line.
func headerDate(h http.Header, name string) (time.Time, bool) {
	v := h[name]
	if len(v) != 1 {
		return time.Time{}, false
	}
	return parseHTTPDate(strings.TrimSpace(v[0]))
}

// ageValue reads the Age header (RFC 9111 section 5.1): the first member
// of the first line, non-negative digits (a ";parameter" after them is
// dropped). Anything else is ignored (0).
func ageValue(h http.Header) time.Duration {
	v := h["Age"]
	if len(v) == 0 {
		return 0
	}
	first, _ := nextMember(v[0])
	if i := strings.IndexByte(first, ';'); i >= 0 {
		first = first[:i] // a parameter does not make the number invalid
	}
	d := parseDelta(strings.TrimSpace(first), true)
	if !d.set() {
		return 0
	}
	return time.Duration(d) * time.Second
}

// freshness is what section 4.2 computes for a stored response.
type freshness struct {
	// lifetime is the freshness lifetime (section 4.2.1).
	lifetime time.Duration
	// heuristic is set when lifetime is a heuristic (section 4.2.2).
	heuristic bool
	// initialAge is corrected_initial_age (section 4.2.3).
	initialAge time.Duration
}

// computeFreshness returns the freshness lifetime and the corrected
// initial age of a response received at respTime for a request sent at
// reqTime (RFC 9111 sections 4.2.1 to 4.2.3). shared selects s-maxage;
// heuristicMax caps a heuristic lifetime. Pure: no clock read.
func computeFreshness(status int, h http.Header, cc *directives, shared bool, reqTime, respTime time.Time, heuristicMax time.Duration) freshness {
	date, ok := headerDate(h, "Date")
	if !ok {
		date = respTime
	}
	var f freshness
	f.lifetime, f.heuristic = lifetime(status, h, cc, shared, date, heuristicMax)

	// Section 4.2.3.
	apparent := respTime.Sub(date)
	if apparent < 0 {
		apparent = 0
	}
	delay := respTime.Sub(reqTime)
	if delay < 0 {
		delay = 0
	}
	corrected := ageValue(h) + delay
	f.initialAge = max(apparent, corrected)
	return f
}

// lifetime is section 4.2.1: s-maxage (shared), max-age, Expires - Date,
// else a heuristic. An invalid max-age or s-maxage, or an invalid
// Expires, gives 0: the response is stale at once.
func lifetime(status int, h http.Header, cc *directives, shared bool, date time.Time, heuristicMax time.Duration) (time.Duration, bool) {
	if shared && cc.sMaxAge != deltaAbsent {
		return deltaDuration(cc.sMaxAge), false
	}
	if cc.maxAge != deltaAbsent {
		return deltaDuration(cc.maxAge), false
	}
	if ex := h["Expires"]; len(ex) > 0 {
		exp, ok := headerDate(h, "Expires")
		if !ok || !exp.After(date) {
			return 0, false
		}
		return exp.Sub(date), false
	}
	if heuristicMax < 0 || (!heuristicStatus(status) && !cc.public) {
		return 0, false
	}
	lm, ok := headerDate(h, "Last-Modified")
	if !ok || !lm.Before(date) {
		return 0, false
	}
	d := date.Sub(lm) / 10
	if heuristicMax > 0 && d > heuristicMax {
		d = heuristicMax
	}
	return d, true
}

func deltaDuration(d delta) time.Duration {
	if !d.set() {
		return 0
	}
	return time.Duration(d) * time.Second
}

// currentAge is section 4.2.3: corrected_initial_age + resident_time.
func currentAge(initialAge time.Duration, respTime, now time.Time) time.Duration {
	resident := now.Sub(respTime)
	if resident < 0 {
		resident = 0
	}
	return initialAge + resident
}

// ageHeader formats an age in whole seconds for the Age header, capped
// at 2^31 (section 5.1).
func ageSeconds(age time.Duration) int64 {
	s := int64(age / time.Second)
	if s > maxDelta {
		s = maxDelta
	}
	if s < 0 {
		s = 0
	}
	return s
}
