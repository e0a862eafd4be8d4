package connmgr

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTryContextDeadlineIsTheEarlierOfItsOwnAndTheParents(t *testing.T) {
	own := time.Now().Add(time.Hour)
	tc := newTryContext(context.Background(), own)
	d, ok := tc.Deadline()
	assert.True(t, ok)
	assert.Equal(t, own, d)

	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pd, _ := parent.Deadline()
	d, _ = newTryContext(parent, own).Deadline()
	assert.Equal(t, pd, d, "the parent's earlier deadline")

	d, ok = newTryContext(parent, time.Time{}).Deadline()
	assert.True(t, ok)
	assert.Equal(t, pd, d, "no deadline of its own: the parent's")

	_, ok = newTryContext(context.Background(), time.Time{}).Deadline()
	assert.False(t, ok)
}

func TestTryContextUnarmedNoticesItsDeadlineByTheClock(t *testing.T) {
	tc := newTryContext(context.Background(), time.Now().Add(20*time.Millisecond))
	assert.NoError(t, tc.Err())
	assert.False(t, tc.armed.Load())
	time.Sleep(30 * time.Millisecond)
	assert.ErrorIs(t, tc.Err(), context.DeadlineExceeded)
	select {
	case <-tc.Done():
	default:
		t.Fatal("Done after the deadline must be closed")
	}
	assert.Nil(t, tc.timer, "no timer was ever armed")
}

func TestTryContextDoneClosesAtTheDeadline(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background()) // a live cancelable parent
	defer cancel()
	tc := newTryContext(parent, time.Now().Add(30*time.Millisecond))
	start := time.Now()
	select {
	case <-tc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done never closed")
	}
	assert.GreaterOrEqual(t, time.Since(start), 25*time.Millisecond)
	assert.ErrorIs(t, tc.Err(), context.DeadlineExceeded)
	assert.ErrorIs(t, context.Cause(tc), context.DeadlineExceeded, "not the cause of the parent, which has not ended")
	assert.NoError(t, parent.Err(), "the parent is not ended by its child")
}

func TestTryContextEndsWithItsParent(t *testing.T) {
	t.Run("unarmed", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		tc := newTryContext(parent, time.Now().Add(time.Hour))
		cancel()
		assert.ErrorIs(t, tc.Err(), context.Canceled)
		<-tc.Done()
	})
	t.Run("armed", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		tc := newTryContext(parent, time.Now().Add(time.Hour))
		done := tc.Done()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the parent's cancel did not reach the attempt's context")
		}
		assert.ErrorIs(t, tc.Err(), context.Canceled)
	})
	t.Run("parent already ended when armed", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		cancel()
		tc := newTryContext(parent, time.Time{})
		<-tc.Done()
		assert.ErrorIs(t, tc.Err(), context.Canceled)
	})
	t.Run("deadline already past when armed", func(t *testing.T) {
		tc := newTryContext(context.Background(), time.Now().Add(-time.Second))
		<-tc.Done()
		assert.ErrorIs(t, tc.Err(), context.DeadlineExceeded)
	})
}

func TestTryContextStopEndsItAndWhatDerivesFromIt(t *testing.T) {
	tc := newTryContext(context.Background(), time.Now().Add(time.Hour))
	child, cancelChild := context.WithCancelCause(tc) // as net/http's Transport does
	defer cancelChild(nil)
	var ran atomic.Int32
	context.AfterFunc(tc, func() { ran.Add(1) })
	require.True(t, tc.armed.Load(), "a derived context arms the timer")
	tc.stop()
	tc.stop() // once only
	assert.ErrorIs(t, tc.Err(), context.Canceled)
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the derived context was not ended")
	}
	assert.ErrorIs(t, child.Err(), context.Canceled)
	assert.ErrorIs(t, context.Cause(child), context.Canceled)
	assert.Eventually(t, func() bool { return ran.Load() == 1 }, 5*time.Second, time.Millisecond)
	assert.False(t, tc.timer.Stop(), "the timer was stopped")
}

func TestTryContextForgetsADerivedContextEndedFirst(t *testing.T) {
	tc := newTryContext(context.Background(), time.Now().Add(time.Hour))
	child, cancel := context.WithCancel(tc)
	second, cancelSecond := context.WithCancel(tc)
	tc.mu.Lock()
	require.NotNil(t, tc.first.f)
	require.Len(t, tc.more, 1)
	tc.mu.Unlock()
	cancel()
	cancelSecond()
	tc.mu.Lock()
	assert.Nil(t, tc.first.f, "a derived context that ended on its own unregisters")
	assert.Empty(t, tc.more)
	tc.mu.Unlock()
	assert.ErrorIs(t, second.Err(), context.Canceled)
	assert.ErrorIs(t, child.Err(), context.Canceled)
	tc.stop()
}

func TestTryContextAfterFuncOnAnEndedContextStillRuns(t *testing.T) {
	tc := newTryContext(context.Background(), time.Time{})
	tc.stop()
	ran := make(chan struct{})
	stop := tc.AfterFunc(func() { close(ran) })
	assert.False(t, stop())
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("f never ran")
	}
}

type tryCtxKey struct{}

func TestTryContextValuesAreTheParents(t *testing.T) {
	parent := context.WithValue(context.Background(), tryCtxKey{}, "v")
	tc := newTryContext(parent, time.Time{})
	assert.Equal(t, "v", tc.Value(tryCtxKey{}))
	assert.Nil(t, tc.Value("other"))
	assert.Equal(t, "connmgr attempt context", tc.String())
}

func TestTryContextUnderConcurrentUse(t *testing.T) {
	for range 50 {
		parent, cancel := context.WithCancel(context.Background())
		tc := newTryContext(parent, time.Now().Add(time.Millisecond))
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch i % 6 {
				case 0:
					<-tc.Done()
				case 1:
					for tc.Err() == nil {
						time.Sleep(100 * time.Microsecond)
					}
				case 2:
					c, cc := context.WithCancel(tc)
					<-c.Done()
					cc()
				case 3:
					tc.stop()
				case 4:
					cancel()
				case 5:
					stop := context.AfterFunc(tc, func() {})
					stop()
				}
			}()
		}
		wg.Wait()
		err := tc.Err()
		assert.True(t, errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded), "ended: %v", err)
		cancel()
	}
}

// TestPerTryTimeoutOverRealTransports: the attempt's own context ends a
// stalled attempt at its per-try timeout over net/http's HTTP/1.1 and
// HTTP/2 transports, which wait on it through a context of their own;
// a stall while the body is read ends at the same deadline; and the
// server sees each request's context end once the caller is done.
func TestPerTryTimeoutOverRealTransports(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			release := make(chan struct{})
			serverDone := make(chan struct{}, 8)
			// A stalled handler reports that it saw its request end, then
			// stays until the test ends: returning would finish the
			// response, and over TLS the client's close_notify can let that
			// ending reach the client before its connection is closed.
			stall := func(r *http.Request) {
				select {
				case <-r.Context().Done():
					serverDone <- struct{}{}
					<-release
				case <-release:
				}
			}
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/stall":
					stall(r)
				case "/stall-body":
					_, _ = io.WriteString(w, "partial")
					w.(http.Flusher).Flush()
					stall(r)
				default:
					_, _ = io.WriteString(w, r.Proto)
					serverDone <- struct{}{}
				}
			}))
			srv.EnableHTTP2 = h2
			srv.StartTLS()
			defer srv.Close()
			defer close(release)
			base := &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
			m := newTestManager(t, Config{Default: EndpointConfig{Timeout: 150 * time.Millisecond, Retry: RetryConfig{MaxAttempts: 1}}},
				WithTLSConfig("default", base))
			proto := callOK(t, m, srv.URL)
			assert.Equal(t, map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2], proto)
			<-serverDone

			start := time.Now()
			resp, err := m.Client().Get(srv.URL + "/stall")
			if resp != nil {
				_ = resp.Body.Close()
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Less(t, time.Since(start), 3*time.Second)
			select {
			case <-serverDone:
			case <-time.After(5 * time.Second):
				t.Fatal("the server never saw the stalled request end")
			}

			resp, err = m.Client().Get(srv.URL + "/stall-body")
			require.NoError(t, err)
			data, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			assert.ErrorIs(t, err, context.DeadlineExceeded, "the per-try timeout also bounds the body (read %q)", data)
			select {
			case <-serverDone:
			case <-time.After(5 * time.Second):
				t.Fatal("the server never saw the stalled body end")
			}
			assert.EqualValues(t, 0, m.Stats().InFlight)
			m.CloseIdleConnections()
		})
	}
}

func TestTryContextKnowsTheContextPackagesCancelKey(t *testing.T) {
	require.NotNil(t, cancelCtxKey)
	// Under a live cancelable parent, the cause of an attempt that ended
	// is its own error, and stays so when the parent ends later with a
	// cause of its own.
	parent, cancel := context.WithCancelCause(context.Background())
	tc := newTryContext(parent, time.Now().Add(-time.Second))
	assert.ErrorIs(t, tc.Err(), context.DeadlineExceeded)
	assert.ErrorIs(t, context.Cause(tc), context.DeadlineExceeded)
	cancel(errors.New("caller went away"))
	assert.ErrorIs(t, context.Cause(tc), context.DeadlineExceeded)
}

func TestTryContextErrIsNeverAheadOfDone(t *testing.T) {
	for range 2000 {
		tc := newTryContext(context.Background(), time.Time{})
		done := tc.Done()
		stopped := make(chan struct{})
		go func() { tc.stop(); close(stopped) }()
		for giveUp := time.Now().Add(5 * time.Second); tc.Err() == nil; {
			if time.Now().After(giveUp) {
				t.Fatal("stop never ended the context")
			}
		}
		select {
		case <-done:
		default:
			t.Fatal("Err reported the end before Done was closed")
		}
		<-stopped
	}
}
