package bench

import (
	"net/http"
	"testing"

	"github.com/hashicorp/go-retryablehttp"
)

// newRetryableHTTP is hashicorp/go-retryablehttp with its default retry
// and backoff policy, 2 retries, and logging off.
func newRetryableHTTP(_ testing.TB, rt http.RoundTripper) *client {
	c := retryablehttp.NewClient()
	c.HTTPClient = &http.Client{Transport: rt}
	c.Logger = nil
	c.RetryMax = 2
	return &client{
		fetch: func(url string) error {
			req, err := retryablehttp.NewRequest(http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			return consume(c.Do(req))
		},
		close: c.HTTPClient.CloseIdleConnections,
	}
}
