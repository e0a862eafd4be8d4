package connmgr

import (
	"context"
	"errors"
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
	assert.False(t, tc.armed)
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
	require.True(t, tc.armed, "a derived context arms the timer")
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
