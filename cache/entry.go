package cache

import (
	"bytes"
	"encoding/gob"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// entry is one stored response: immutable once built. A 304 makes a new
// entry (section 4.3.4), never changes one in place, so hits read it
// without locks.
type entry struct {
	status     int
	statusLine string
	header     http.Header // as stored (section 3.1): no hop-by-hop fields
	body       []byte
	reqTime    time.Time // request_time (section 4.2.3)
	respTime   time.Time // response_time
	fresh      freshness
	cc         directives // the stored Cache-Control
	vary       varyKey
	// ttlMode marks an entry stored in TTL mode: its lifetime is the TTL
	// and its Cache-Control does not ask for revalidation.
	ttlMode bool
	etag    string
	lastMod string
}

// size is what the entry weighs in the in-memory store, in bytes.
func (e *entry) size() int64 {
	n := int64(len(e.body)) + 640 // the entry, its header map and times, measured
	for k, vs := range e.header {
		n += int64(len(k)) + 16
		for _, v := range vs {
			n += int64(len(v)) + 16
		}
	}
	for _, v := range e.vary.values {
		n += int64(len(v)) + 16
	}
	return n
}

// hopByHop are the fields a cache never stores (section 3.1, RFC 9110
// section 7.6.1).
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Transfer-Encoding", "Upgrade",
	"Proxy-Authenticate", "Proxy-Authentication-Info", "Proxy-Authorization", "Trailer"}

// storedHeader returns the fields of h a cache stores (section 3.1):
// without hop-by-hop fields, the fields Connection lists, and the fields
// that no-cache="..." (and private="..." in a shared cache) name.
func storedHeader(h http.Header, cc *directives, shared bool) http.Header {
	out := h.Clone()
	for _, line := range h["Connection"] {
		for _, f := range strings.Split(line, ",") {
			if f = strings.TrimSpace(f); f != "" {
				delete(out, http.CanonicalHeaderKey(f))
			}
		}
	}
	for _, f := range hopByHop {
		delete(out, f)
	}
	for _, f := range cc.noCacheFields {
		delete(out, http.CanonicalHeaderKey(f))
	}
	if shared {
		for _, f := range cc.privateFields {
			delete(out, http.CanonicalHeaderKey(f))
		}
	}
	return out
}

func statusLine(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// variants is what the store holds for one primary key: the stored
// responses of a URI, newest first (section 4.1 allows several).
type variants struct {
	list []*entry
}

func (v *variants) size() int64 {
	var n int64 = 64
	for _, e := range v.list {
		n += e.size()
	}
	return n
}

// with returns a new set with e first, replacing a variant with the same
// Vary selection, and at most max variants kept.
func (v *variants) with(e *entry, maxVariants int) *variants {
	out := &variants{list: make([]*entry, 0, len(v.list)+1)}
	out.list = append(out.list, e)
	for _, old := range v.list {
		if len(out.list) >= maxVariants {
			break
		}
		if sameSelection(&old.vary, &e.vary) {
			continue
		}
		out.list = append(out.list, old)
	}
	return out
}

func sameSelection(a, b *varyKey) bool {
	if len(a.names) != len(b.names) {
		return false
	}
	for i := range a.names {
		if a.names[i] != b.names[i] || a.values[i] != b.values[i] {
			return false
		}
	}
	return true
}

// The byte form of a variant set, for a Store that holds bytes (Redis).

type wireEntry struct {
	Status     int
	Header     map[string][]string
	Body       []byte
	ReqTime    int64
	RespTime   int64
	TTLMode    bool
	Lifetime   time.Duration
	InitialAge time.Duration
	Heuristic  bool
	VaryNames  []string
	VaryValues []string
}

type wireVariants struct {
	Version int
	List    []wireEntry
}

const wireVersion = 1

func encodeVariants(v *variants) ([]byte, error) {
	w := wireVariants{Version: wireVersion, List: make([]wireEntry, len(v.list))}
	for i, e := range v.list {
		w.List[i] = wireEntry{
			Status: e.status, Header: e.header, Body: e.body,
			ReqTime: e.reqTime.UnixNano(), RespTime: e.respTime.UnixNano(),
			TTLMode: e.ttlMode, VaryNames: e.vary.names, VaryValues: e.vary.values,
			Lifetime: e.fresh.lifetime, InitialAge: e.fresh.initialAge, Heuristic: e.fresh.heuristic,
		}
	}
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(&w); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// decodeVariants rebuilds a variant set, with the freshness computed
// when it was stored.
func decodeVariants(data []byte) (*variants, bool) {
	var w wireVariants
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&w); err != nil || w.Version != wireVersion {
		return nil, false
	}
	out := &variants{list: make([]*entry, 0, len(w.List))}
	for _, we := range w.List {
		if we.Status < 100 || we.Status > 999 || len(we.VaryNames) != len(we.VaryValues) {
			return nil, false
		}
		if we.Header == nil {
			we.Header = map[string][]string{}
		}
		e := buildEntry(we.Status, http.Header(we.Header), we.Body, time.Unix(0, we.ReqTime), time.Unix(0, we.RespTime),
			varyKey{names: we.VaryNames, values: we.VaryValues}, false, 0, 0)
		e.ttlMode = we.TTLMode
		e.fresh = freshness{lifetime: we.Lifetime, initialAge: we.InitialAge, heuristic: we.Heuristic}
		out.list = append(out.list, e)
	}
	return out, true
}

// buildEntry makes an entry from a header that is already in stored form.
// ttl > 0 is TTL mode.
func buildEntry(status int, h http.Header, body []byte, reqTime, respTime time.Time, vk varyKey,
	shared bool, heuristicMax, ttl time.Duration) *entry {
	e := &entry{
		status: status, statusLine: statusLine(status), header: h, body: body,
		reqTime: reqTime, respTime: respTime, vary: vk,
		cc: parseDirectives(h["Cache-Control"]),
	}
	e.fresh = computeFreshness(status, h, &e.cc, shared, reqTime, respTime, heuristicMax)
	if ttl > 0 {
		e.ttlMode = true
		e.fresh.lifetime, e.fresh.heuristic = ttl, false
	}
	if v := h["Etag"]; len(v) > 0 {
		e.etag = v[0]
	}
	if v := h["Last-Modified"]; len(v) > 0 {
		e.lastMod = v[0]
	}
	return e
}
