package connmgr

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// trackedBody is a request body that counts its Close calls.
type trackedBody struct {
	io.Reader
	closed atomic.Int32
}

func (b *trackedBody) Close() error { b.closed.Add(1); return nil }

func newTrackedBody(s string) *trackedBody { return &trackedBody{Reader: strings.NewReader(s)} }

// TestMiddlewareBreakingTheContractIsAnError: a middleware is user code.
// One that panics (when called or when built) or answers (nil, nil) gives
// the caller an error, never a panic or a nil response, and the request
// body is closed. Before the fix the panic escaped RoundTrip and (nil,
// nil) reached http.Client.
func TestMiddlewareBreakingTheContractIsAnError(t *testing.T) {
	cases := []struct {
		name string
		mw   Middleware
		want string
	}{
		{"panics", func(http.RoundTripper) http.RoundTripper {
			return RoundTripperFunc(func(*http.Request) (*http.Response, error) { panic("mw") })
		}, "middleware default panicked: mw"},
		{"panics after next", func(next http.RoundTripper) http.RoundTripper {
			return RoundTripperFunc(func(r *http.Request) (*http.Response, error) {
				resp, err := next.RoundTrip(r)
				if err == nil {
					resp.Body.Close()
				}
				panic("late")
			})
		}, "panicked: late"},
		{"returns nil, nil", func(http.RoundTripper) http.RoundTripper {
			return RoundTripperFunc(func(*http.Request) (*http.Response, error) { return nil, nil })
		}, "neither a response nor an error"},
		{"panics while built", func(http.RoundTripper) http.RoundTripper { panic("build") }, "panicked: build"},
		{"builds nil", func(http.RoundTripper) http.RoundTripper { return nil }, "nil RoundTripper"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fakeTransport{fn: func(_ int, r *http.Request) (*http.Response, error) { return cannedResponse(r, 200, "ok"), nil }}
			m := newTestManager(t, Config{Default: fastRetries(1)}, WithTransport(ft), WithMiddleware(tc.mw))
			body := newTrackedBody("hello")
			req, _ := http.NewRequest("PUT", "http://x.test/", body)
			var resp *http.Response
			var err error
			require.NotPanics(t, func() { resp, err = m.RoundTrip(req) })
			assert.Nil(t, resp)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.GreaterOrEqual(t, body.closed.Load(), int32(1), "the request body is closed")
			assert.Zero(t, m.Stats().InFlight)

			_, err = m.Client().Get("http://x.test/")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want, "http.Client gets the Manager's error")
		})
	}
}
