package bench

import (
	"net/http"
	"testing"

	"resty.dev/v3"
)

// newResty is resty v3 with 2 retries on its default conditions. The
// body is streamed to the caller (SetResponseDoNotParse) rather than
// buffered by resty, so the workload is the same as everyone else's.
func newResty(tb testing.TB, rt http.RoundTripper) *client {
	hc := &http.Client{Transport: rt}
	c := resty.NewWithClient(hc).
		SetRetryCount(2).
		SetResponseDoNotParse(true)
	return &client{
		fetch: func(url string) error {
			resp, err := c.R().Get(url)
			if err != nil {
				if resp != nil && resp.Body != nil {
					resp.Body.Close()
				}
				return err
			}
			return consumeBody(resp.StatusCode(), resp.Body)
		},
		close: func() {
			if err := c.Close(); err != nil {
				tb.Error(err)
			}
			hc.CloseIdleConnections()
		},
	}
}
