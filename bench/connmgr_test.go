package bench

import (
	"net/http"
	"testing"

	"github.com/connmgr/connmgr"
)

var connmgrContenders = []contender{
	{name: "connmgr", newClient: newConnmgr, ownTransport: true},
	{name: "connmgr_ctx_timeout", newClient: newConnmgrCtxTimeout, inProcessOnly: true},
}

// newConnmgr is connmgr's default pipeline (Config{}: 10s per try, 30s in
// all, 3 attempts, breaker and stats on) through m.Client(). Over the
// network (rt nil) it uses the transport it builds itself.
func newConnmgr(tb testing.TB, rt http.RoundTripper) *client {
	hc, closeFn := newConnmgrClient(tb, rt)
	return &client{
		fetch: func(url string) error { return get(hc, url) },
		close: closeFn,
	}
}

// newConnmgrCtxTimeout is connmgr with the caller still wrapping each
// request in its own 10s context, as code moved over from raw_timeout
// would: the per-try context connmgr adds then nests inside the caller's.
func newConnmgrCtxTimeout(tb testing.TB, rt http.RoundTripper) *client {
	hc, closeFn := newConnmgrClient(tb, rt)
	return &client{
		fetch: func(url string) error { return getWithTimeout(hc, url) },
		close: closeFn,
	}
}

func newConnmgrClient(tb testing.TB, rt http.RoundTripper) (*http.Client, func()) {
	var (
		m   *connmgr.Manager
		err error
	)
	if rt != nil {
		m, err = connmgr.New(connmgr.Config{}, connmgr.WithTransport(rt))
	} else {
		m, err = connmgr.New(connmgr.Config{})
	}
	if err != nil {
		tb.Fatalf("connmgr.New: %v", err)
	}
	return m.Client(), func() {
		m.CloseIdleConnections()
		if err := m.Close(); err != nil {
			tb.Errorf("connmgr Close: %v", err)
		}
	}
}
