package cache

import (
	"testing"
	"time"
)

// TestRangeFromStored is RFC 9110 sections 14.2 and 15.3.7 with RFC 9111
// section 3.4: a Range request answered from a complete stored response
// (body "body-1", 6 bytes, max-age=100) is a 206 carrying the stored
// fields, or goes to the origin untouched.
func TestRangeFromStored(t *testing.T) {
	tests := []struct {
		rule   string
		after  time.Duration
		header []string
		hit    bool
		body   string // when hit
		crange string // when hit
	}{
		{"14.1.2: int-range with both ends", 0, []string{"Range", "bytes=0-1"}, true, "bo", "bytes 0-1/6"},
		{"14.1.2: int-range without last-pos runs to the end", 0, []string{"Range", "bytes=1-"}, true, "ody-1", "bytes 1-5/6"},
		{"14.1.2: a last-pos past the end is the end", 0, []string{"Range", "bytes=2-100"}, true, "dy-1", "bytes 2-5/6"},
		{"14.1.2: suffix-range is the last N bytes", 0, []string{"Range", "bytes=-1"}, true, "1", "bytes 5-5/6"},
		{"14.1.2: a suffix longer than the body is all of it", 0, []string{"Range", "bytes=-100"}, true, "body-1", "bytes 0-5/6"},
		{"14.1.1: the unit is case-insensitive", 0, []string{"Range", "Bytes=0-0"}, true, "b", "bytes 0-0/6"},
		{"5.2.1.2: max-stale lets a stale response answer a range", 150 * time.Second, []string{"Range", "bytes=0-1", "Cache-Control", "max-stale"}, true, "bo", "bytes 0-1/6"},
		{"14.1.1: an unsatisfiable range goes to the origin", 0, []string{"Range", "bytes=9-"}, false, "", ""},
		{"14.1.2: first-pos after last-pos is invalid: to the origin", 0, []string{"Range", "bytes=3-1"}, false, "", ""},
		{"14.1.2: several ranges go to the origin", 0, []string{"Range", "bytes=0-1,3-4"}, false, "", ""},
		{"14.1.1: another unit goes to the origin", 0, []string{"Range", "items=0-1"}, false, "", ""},
		{"13.1.5: If-Range is not evaluated here: to the origin", 0, []string{"Range", "bytes=0-1", "If-Range", `"x"`}, false, "", ""},
		{"4.2: a stale stored response does not answer a range", 150 * time.Second, []string{"Range", "bytes=0-1"}, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.serve("Cache-Control", "max-age=100", "A", "1")
			h.get("/r")
			h.clk.Advance(tt.after)
			r := h.get("/r", tt.header...)
			if got := h.o.hits.Load() == 1; got != tt.hit {
				t.Fatalf("answered from the cache = %v (origin hits %d), want %v", got, h.o.hits.Load(), tt.hit)
			}
			if !tt.hit {
				if got := h.o.lastReq.Load().Header.Get("Range"); got != tt.header[1] {
					t.Errorf("the origin saw Range %q, want the caller's %q", got, tt.header[1])
				}
				return
			}
			if r.status != 206 || r.body != tt.body || r.header.Get("Content-Range") != tt.crange {
				t.Errorf("got %d %q Content-Range %q, want 206 %q %q", r.status, r.body, r.header.Get("Content-Range"), tt.body, tt.crange)
			}
			if r.header.Get("Content-Length") != itoa(int64(len(tt.body))) {
				t.Errorf("Content-Length = %q, want %d", r.header.Get("Content-Length"), len(tt.body))
			}
			// RFC 9111 3.4 / RFC 9110 15.3.7: the stored fields go with the part.
			if r.header.Get("A") != "1" || r.header.Get("Age") == "" || r.header.Get("Cache-Control") != "max-age=100" {
				t.Errorf("header %v lacks the stored fields and Age", r.header)
			}
		})
	}
}

// TestParseRange is RFC 9110 section 14.1.2 resolved against a 10-byte
// representation.
func TestParseRange(t *testing.T) {
	tests := []struct {
		v           string
		first, last int64
		ok          bool
	}{
		{"bytes=0-0", 0, 0, true},
		{"bytes=4-9", 4, 9, true},
		{"bytes=4-", 4, 9, true},
		{"bytes=-5", 5, 9, true},
		{"bytes = 1-2", 1, 2, true},
		{"bytes=10-", 0, 0, false},
		{"bytes=-0", 0, 0, false},
		{"bytes=-", 0, 0, false},
		{"bytes=a-1", 0, 0, false},
		{"bytes=1-a", 0, 0, false},
		{"bytes=+1-2", 0, 0, false},
		{"bytes=0-1, 2-3", 0, 0, false},
		{"bytes", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		f, l, ok := parseRange(tt.v, 10)
		if ok != tt.ok || (ok && (f != tt.first || l != tt.last)) {
			t.Errorf("parseRange(%q) = %d, %d, %v; want %d, %d, %v", tt.v, f, l, ok, tt.first, tt.last, tt.ok)
		}
	}
}
