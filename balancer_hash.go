package connmgr

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"

	"github.com/connmgr/connmgr/internal/quote"
)

// hashKeyKind says where consistent_hash finds a request's key.
type hashKeyKind uint8

const (
	hashByPath hashKeyKind = iota
	hashByHeader
	hashByCookie
	hashByQuery
)

// hashKey is a parsed hash_key: "path", "header:Name", "cookie:name" or
// "query:name".
type hashKey struct {
	kind hashKeyKind
	name string // canonical header name, cookie or query parameter name
}

// parseHashKey parses a hash_key value; "" means the path.
func parseHashKey(s string) (hashKey, error) {
	if s == "" || s == "path" {
		return hashKey{kind: hashByPath}, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return hashKey{}, fmt.Errorf(`want "path", "header:Name", "cookie:name" or "query:name", got %s`, quote.Short(s))
	}
	switch kind {
	case "header":
		if !validHeaderName(name) {
			return hashKey{}, fmt.Errorf("not a valid header name: %s", quote.Short(name))
		}
		return hashKey{kind: hashByHeader, name: textproto.CanonicalMIMEHeaderKey(name)}, nil
	case "cookie":
		return hashKey{kind: hashByCookie, name: name}, nil
	case "query":
		return hashKey{kind: hashByQuery, name: name}, nil
	}
	return hashKey{}, fmt.Errorf(`unknown form %s: want "path", "header:", "cookie:" or "query:"`, quote.Short(kind))
}

// value returns the request's key, without allocating; ok is false when
// the request does not carry one.
func (k hashKey) value(r *http.Request) (string, bool) {
	if r == nil {
		return "", false
	}
	switch k.kind {
	case hashByHeader:
		if v := r.Header[k.name]; len(v) > 0 && v[0] != "" {
			return v[0], true
		}
	case hashByCookie:
		for _, line := range r.Header["Cookie"] {
			if v, ok := findPair(line, ';', k.name); ok {
				return v, true
			}
		}
	case hashByQuery:
		if r.URL != nil {
			return findPair(r.URL.RawQuery, '&', k.name)
		}
	default:
		if r.URL != nil {
			return r.URL.Path, true
		}
	}
	return "", false
}

// findPair finds name=value in s, pairs separated by sep (spaces around
// cookie pairs are skipped). Values are compared and returned raw.
func findPair(s string, sep byte, name string) (string, bool) {
	for s != "" {
		var pair string
		if i := strings.IndexByte(s, sep); i >= 0 {
			pair, s = s[:i], s[i+1:]
		} else {
			pair, s = s, ""
		}
		pair = strings.TrimSpace(pair)
		if len(pair) > len(name) && pair[len(name)] == '=' && pair[:len(name)] == name {
			return pair[len(name)+1:], true
		}
	}
	return "", false
}

// hash64 is FNV-1a with a final mix (splitmix64's), stable across
// processes so every replica maps a key to the same upstream.
func hash64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// Ring sizing: points per unit of weight, and a cap on the whole ring.
const (
	ringPointsPerWeight = 160
	maxRingPoints       = 1 << 17
)

// boundedLoadFactor is how far above the mean in-flight load one
// upstream may go before a key spills to the next one on the ring
// (Google's consistent hashing with bounded loads).
const boundedLoadFactor = 1.25

// consistentHash is the consistent_hash balancer: a hash ring with
// virtual points, keyed by the request's hash_key. When an upstream
// leaves, only the keys it held move. Bounded load: an upstream already
// above 1.25× the mean in-flight load passes the key on to the next one
// clockwise, so one hot key cannot melt one upstream. A pick is a binary
// search, O(log n).
type consistentHash struct {
	env *lbEnv
	key hashKey
}

func (b *consistentHash) Build(ups []*Upstream) Picker {
	return &hashPicker{ups: ups, ring: buildRing(ups), env: b.env, key: b.key}
}

type ringPoint struct {
	hash uint64
	idx  uint32
}

func buildRing(ups []*Upstream) []ringPoint {
	total := 0
	for _, u := range ups {
		total += max(u.Weight, 1)
	}
	per := ringPointsPerWeight
	if total > 0 && total*per > maxRingPoints {
		per = max(maxRingPoints/total, 1)
	}
	ring := make([]ringPoint, 0, total*per)
	for i, u := range ups {
		n := max(u.Weight, 1) * per
		for j := 0; j < n; j++ {
			ring = append(ring, ringPoint{hash: hash64(u.load.key + "#" + strconv.Itoa(j)), idx: uint32(i)})
		}
	}
	sort.Slice(ring, func(i, j int) bool { return ring[i].hash < ring[j].hash })
	return ring
}

type hashPicker struct {
	ups  []*Upstream
	ring []ringPoint
	env  *lbEnv
	key  hashKey
}

func (p *hashPicker) Pick(info PickInfo) (PickResult, error) {
	n := len(p.ups)
	if n == 0 {
		return PickResult{}, ErrNoHealthyUpstream
	}
	key, ok := p.key.value(info.Request)
	if !ok {
		// No key: spread such requests evenly.
		return PickResult{Upstream: firstUntried(p.ups, rand.IntN(n), info.Tried)}, nil
	}
	h := hash64(key)
	start := sort.Search(len(p.ring), func(i int) bool { return p.ring[i].hash >= h })
	// The bound: ceil(c × (in flight + 1) / n), as in the paper.
	total := float64(p.env.inFlight.Load() + 1)
	bound := int64(boundedLoadFactor*total/float64(n) + 0.999999)
	var first *Upstream
	for i := 0; i < len(p.ring); i++ {
		u := p.ups[p.ring[(start+i)%len(p.ring)].idx]
		if first == nil {
			first = u
		}
		if len(info.Tried) > 0 && tried(info.Tried, u) {
			continue
		}
		if u.load.inFlight.Load()+1 <= bound {
			return PickResult{Upstream: u}, nil
		}
	}
	return PickResult{Upstream: first}, nil
}
