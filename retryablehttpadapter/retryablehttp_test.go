package retryablehttpadapter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func status(code int, header ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return &http.Response{StatusCode: code, Status: http.StatusText(code), Header: h}
}

func TestRetryPolicyKeepsRetryablehttpDecisions(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "http://x", Err: errors.New("connection refused")}
	untrusted := &url.Error{Op: "Get", URL: "https://x", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		check   retryablehttp.CheckRetry
		ctx     context.Context
		resp    *http.Response
		err     error
		retry   bool
		wantErr error
	}{
		{"503", retryablehttp.DefaultRetryPolicy, context.Background(), status(503), nil, true, nil},
		{"505", retryablehttp.DefaultRetryPolicy, context.Background(), status(505), nil, true, nil},
		{"501", retryablehttp.DefaultRetryPolicy, context.Background(), status(501), nil, false, nil},
		{"429", retryablehttp.DefaultRetryPolicy, context.Background(), status(429), nil, true, nil},
		{"408", retryablehttp.DefaultRetryPolicy, context.Background(), status(408), nil, false, nil},
		{"200", retryablehttp.DefaultRetryPolicy, context.Background(), status(200), nil, false, nil},
		{"connection refused", retryablehttp.DefaultRetryPolicy, context.Background(), nil, refused, true, nil},
		{"canceled", retryablehttp.DefaultRetryPolicy, canceled, nil, context.Canceled, false, context.Canceled},
		// ErrorPropagatedRetryPolicy returns an error with every 5xx it
		// retries; retryablehttp ignores it then, and so does the policy.
		{"propagated 503", retryablehttp.ErrorPropagatedRetryPolicy, context.Background(), status(503), nil, true, nil},
		{"propagated untrusted", retryablehttp.ErrorPropagatedRetryPolicy, context.Background(), nil, untrusted, false, untrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			retry, err := RetryPolicy(tt.check)(tt.ctx, tt.resp, tt.err)
			assert.Equal(t, tt.retry, retry)
			if tt.wantErr == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.wantErr)
			}
		})
	}
	assert.Nil(t, RetryPolicy(nil))
}

func TestBackoffCountsRetriesFromZero(t *testing.T) {
	var seen []int
	rec := func(min, max time.Duration, n int, _ *http.Response) time.Duration {
		seen = append(seen, n)
		return min * time.Duration(n+1)
	}
	b := Backoff(rec)
	for attempt := 1; attempt <= 3; attempt++ {
		assert.Equal(t, time.Duration(attempt)*time.Millisecond, b(time.Millisecond, time.Second, attempt, nil))
	}
	assert.Equal(t, []int{0, 1, 2}, seen, "connmgr's first retry is retryablehttp's attempt 0")
	assert.Nil(t, Backoff(nil))
}

// TestBackoffNeverReturnsRetryAfter: retryablehttp's backoffs return a
// 429's or 503's Retry-After raw, unbounded; converted, they never see
// it, so the Manager's capped handling is the only one.
func TestBackoffNeverReturnsRetryAfter(t *testing.T) {
	const lo, hi = 10 * time.Millisecond, 80 * time.Millisecond
	for name, b := range map[string]retryablehttp.Backoff{
		"DefaultBackoff":               retryablehttp.DefaultBackoff,
		"RateLimitLinearJitterBackoff": retryablehttp.RateLimitLinearJitterBackoff,
	} {
		t.Run(name, func(t *testing.T) {
			resp := status(503, "Retry-After", "3600")
			raw := b(lo, hi, 0, resp)
			require.Equal(t, time.Hour, raw, "retryablehttp itself returns the header")
			got := Backoff(b)(lo, hi, 1, resp)
			assert.GreaterOrEqual(t, got, lo)
			assert.LessOrEqual(t, got, hi)
			assert.Equal(t, "3600", resp.Header.Get("Retry-After"), "the caller's response is not changed")
		})
	}
}

func TestLinearJitterBackoffKeepsItsShape(t *testing.T) {
	const lo, hi = 10 * time.Millisecond, 20 * time.Millisecond
	b := Backoff(retryablehttp.LinearJitterBackoff)
	for attempt := 1; attempt <= 4; attempt++ {
		for i := 0; i < 20; i++ {
			d := b(lo, hi, attempt, status(503))
			assert.GreaterOrEqual(t, d, time.Duration(attempt)*lo)
			assert.LessOrEqual(t, d, time.Duration(attempt)*hi)
		}
	}
}
