package cache

import (
	"net/http"
	"sort"
	"strings"
)

// varyNames returns the field names a response's Vary header lists (RFC
// 9111 section 4.1), canonicalised and sorted, with every field line
// combined. star reports a "*" member: such a response never matches a
// later request.
func varyNames(h http.Header) (names []string, star bool) {
	for _, line := range h["Vary"] {
		for _, m := range strings.Split(line, ",") {
			m = strings.TrimSpace(m)
			switch {
			case m == "":
			case m == "*":
				star = true
			case validToken(m):
				names = append(names, http.CanonicalHeaderKey(m))
			}
		}
	}
	if len(names) > 1 {
		sort.Strings(names)
		names = compactStrings(names)
	}
	return names, star
}

func compactStrings(s []string) []string {
	out := s[:1]
	for _, v := range s[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}

// absent marks a field the request did not send, which only an absent
// field matches (section 4.1).
const absent = "\x00absent"

// normalizedField is a request field's value as section 4.1 compares
// it: every field line combined into one list, whitespace around the
// commas dropped. It does not allocate for a single clean line.
func normalizedField(h http.Header, name string) string {
	v, ok := h[name]
	if !ok || len(v) == 0 {
		return absent
	}
	if unorderedField(name) {
		return normalizedSet(v)
	}
	if len(v) == 1 && clean(v[0]) {
		return v[0]
	}
	var b strings.Builder
	first := true
	for _, line := range v {
		for _, m := range strings.Split(line, ",") {
			m = strings.Trim(m, " \t")
			if m == "" {
				continue
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			b.WriteString(m)
		}
	}
	return b.String()
}

// clean reports whether a single field line is already normalised: no
// leading or trailing whitespace, no whitespace next to a comma, no
// empty member.
func clean(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == ' ' || s[0] == '\t' || s[len(s)-1] == ' ' || s[len(s)-1] == '\t' || s[0] == ',' || s[len(s)-1] == ',' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == ',' && (s[i-1] == ' ' || s[i-1] == '\t' || s[i+1] == ' ' || s[i+1] == '\t' || s[i+1] == ',') {
			return false
		}
	}
	return true
}

// varyKey is what a stored response was selected with: each field its
// Vary names (and the configured key headers), with the request's
// normalised value.
type varyKey struct {
	names  []string // canonical, sorted
	values []string // normalizedField of the request that got it, or absent
}

func newVaryKey(names []string, req http.Header) varyKey {
	k := varyKey{names: names}
	if len(names) > 0 {
		k.values = make([]string, len(names))
		for i, n := range names {
			k.values[i] = normalizedField(req, n)
		}
	}
	return k
}

// matches reports whether req selects the stored response (section 4.1):
// every field named has the same normalised value.
func (k *varyKey) matches(req http.Header) bool {
	for i, n := range k.names {
		if normalizedField(req, n) != k.values[i] {
			return false
		}
	}
	return true
}

// mergeNames returns the sorted union of two sorted name lists.
func mergeNames(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := append(append(make([]string, 0, len(a)+len(b)), a...), b...)
	sort.Strings(out)
	return compactStrings(out)
}

// unorderedField names fields whose members are case-insensitive and
// whose order carries no meaning (preference is in the q-values; RFC
// 9110 12.4.2, 12.5.3, 12.5.4): section 4.1 lets a cache normalise them.
func unorderedField(name string) bool {
	return name == "Accept-Language" || name == "Accept-Encoding"
}

// normalizedSet is such a field's value: members lower-cased, spaces
// dropped, sorted, joined by commas.
func normalizedSet(lines []string) string {
	var members []string
	for _, line := range lines {
		for _, m := range strings.Split(line, ",") {
			m = strings.ToLower(strings.Join(strings.Fields(m), ""))
			if m != "" {
				members = append(members, m)
			}
		}
	}
	sort.Strings(members)
	return strings.Join(members, ",")
}
