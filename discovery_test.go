//go:build go1.25

package connmgr

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeResolver answers from a table tests change; never real DNS.
type fakeResolver struct {
	mu      sync.Mutex // guards answers, errs, lookups
	answers map[string][]string
	errs    map[string]error
	lookups int
}

func (f *fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if err := f.errs[host]; err != nil {
		return nil, err
	}
	return append([]string(nil), f.answers[host]...), nil
}

func (f *fakeResolver) set(host string, addrs []string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[host] = addrs
	f.errs[host] = err
}

func newDiscoverySet(t *testing.T, r Resolver) (*upstreamSet, *discoverer) {
	c := inherit(EndpointConfig{Upstreams: []UpstreamConfig{{URL: "dns:///pay.internal:8443"}}}, builtinDefaults())
	tgt, err := parseUpstream(c.Upstreams[0])
	require.NoError(t, err)
	s := newUpstreamSet("payments", c, nil, realClock{}, nil)
	d := startDiscoverer(s, nil, []upstreamTarget{tgt}, r, c.Discovery.Refresh, nil)
	return s, d
}

func keys(ups []*Upstream) []string {
	var out []string
	for _, u := range ups {
		out = append(out, u.load.key)
	}
	return out
}

func TestDiscoveryFollowsDNS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &fakeResolver{answers: map[string][]string{"pay.internal": {"10.0.0.2", "10.0.0.1"}}, errs: map[string]error{}}
		s, d := newDiscoverySet(t, r)
		defer s.close()
		defer d.stop()

		res, err := s.pick(PickInfo{}) // waits for the first round
		require.NoError(t, err)
		s.done(res, Outcome{StatusCode: 200})
		ups := s.members()
		assert.Equal(t, []string{"10.0.0.1:8443", "10.0.0.2:8443"}, keys(ups))
		assert.Equal(t, "pay.internal:8443", ups[0].load.host, "Host and TLS name stay the logical host")
		assert.Empty(t, ups[0].URL.Scheme, "the request's scheme is used")

		// One address goes, one comes: the one that stays keeps its state.
		r.set("pay.internal", []string{"10.0.0.2", "10.0.0.3"}, nil)
		time.Sleep(34 * time.Second) // refresh 30s + jitter up to 3s
		synctest.Wait()
		now := s.members()
		assert.Equal(t, []string{"10.0.0.2:8443", "10.0.0.3:8443"}, keys(now))
		assert.Same(t, ups[1], now[0], "10.0.0.2 kept its Upstream and state")

		// A failing or empty answer keeps the last good set, and says so.
		r.set("pay.internal", nil, &net.DNSError{Err: "no such host", Name: "pay.internal", IsNotFound: true})
		time.Sleep(34 * time.Second)
		synctest.Wait()
		assert.Equal(t, []string{"10.0.0.2:8443", "10.0.0.3:8443"}, keys(s.members()))
		s.mu.Lock()
		assert.Equal(t, "resolving pay.internal: no such host; keeping the last good set", s.discoveryErr)
		s.mu.Unlock()
		r.set("pay.internal", []string{}, nil)
		time.Sleep(34 * time.Second)
		synctest.Wait()
		assert.Len(t, s.members(), 2)

		r.set("pay.internal", []string{"10.0.0.9"}, nil)
		time.Sleep(34 * time.Second)
		synctest.Wait()
		assert.Equal(t, []string{"10.0.0.9:8443"}, keys(s.members()))
		s.mu.Lock()
		assert.Empty(t, s.discoveryErr)
		s.mu.Unlock()
	})
}

func TestDiscoveryEmptyFromTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &fakeResolver{answers: map[string][]string{}, errs: map[string]error{"pay.internal": errors.New("server misbehaving")}}
		s, d := newDiscoverySet(t, r)
		_, err := s.pick(PickInfo{})
		require.ErrorIs(t, err, ErrNoHealthyUpstream)
		assert.Equal(t, "connmgr: no healthy upstream for payments: no upstreams (resolving pay.internal: server misbehaving; keeping the last good set)", err.Error())
		d.stop()
		s.close()
	})
}

func TestParseUpstream(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"https://Pay-1.internal:8443", ""},
		{"http://10.0.0.1", ""},
		{"http://[::1]:8080/", ""},
		{"dns:///pay.internal:8443", ""},
		{"pay-1.internal:8443", "want an http:// or https:// URL"},
		{"https://", "URL must name a host"},
		{"https://:8443", "URL must name a host"},
		{"https://h/x", "must not have a path"},
		{"https://user:pw@h", "credentials"},
		{"dns:///pay.internal", "with a port"},
		{"dns://pay.internal:53", `want "dns:///host:port"`},
		{"dns:///h:99999", "port must be"},
		{"", "url must be set"},
	} {
		_, err := parseUpstream(UpstreamConfig{URL: tc.in})
		if tc.want == "" {
			assert.NoError(t, err, tc.in)
		} else if assert.Error(t, err, tc.in) {
			assert.Contains(t, err.Error(), tc.want, tc.in)
		}
	}
}
