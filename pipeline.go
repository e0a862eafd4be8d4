package connmgr

import (
	"io"
	"net/http"
	"strconv"
)

// StatusError is the error an ErrorHook sees for an attempt that got a
// response whose status counts as a failure (by default 408, 429, 500,
// 502, 503, 504).
type StatusError struct {
	StatusCode int
}

func (e *StatusError) Error() string {
	return "upstream answered " + http.StatusText(e.StatusCode) + " (" + strconv.Itoa(e.StatusCode) + ")"
}

// addHeaders sets each of hs that h does not already carry. The values
// are the endpoint's own slices, shared by every request, unless copy is
// set (a hook may write to them).
func addHeaders(h http.Header, hs []headerValue, copy bool) {
	for _, hv := range hs {
		if _, set := h[hv.name]; set {
			continue
		}
		if copy {
			h[hv.name] = []string{hv.values[0]}
		} else {
			h[hv.name] = hv.values[:len(hv.values):len(hv.values)] // an append copies
		}
	}
}

// headerWith returns a copy of h, plus each of hs that h does not carry,
// in one map sized for both.
func headerWith(h http.Header, hs []headerValue) http.Header {
	out := make(http.Header, len(h)+len(hs))
	for k, v := range h {
		out[k] = v[:len(v):len(v)] // shared values, but an append copies
	}
	addHeaders(out, hs, false)
	return out
}

// bodyForFallback returns the body to send to a fallback endpoint instead
// of the attempt. A body a request hook may have read is replayed through
// getBody; without getBody there is nothing safe to send, and the call
// does not fall back.
func bodyForFallback(attemptBody io.ReadCloser, getBody func() (io.ReadCloser, error), hooksRan bool) (io.ReadCloser, bool) {
	if attemptBody == nil || !hooksRan {
		return attemptBody, true
	}
	if getBody == nil {
		return nil, false
	}
	closeRequestBody(attemptBody)
	b, err := getBody()
	if err != nil {
		return nil, false
	}
	return b, true
}
