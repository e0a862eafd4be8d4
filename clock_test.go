package connmgr

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// nilObserver observes nothing: its presence alone makes callStart read
// the wall clock.
type nilObserver struct{}

func (nilObserver) StartCall(*CallEvent) CallObserver { return nil }

func TestCallStart(t *testing.T) {
	t.Run("without an observer: monotonic, wall clock within the refresh", func(t *testing.T) {
		m := newTestManager(t, Config{})
		prev := m.callStart()
		for range 1000 {
			before := time.Now()
			got := m.callStart()
			after := time.Now()
			assert.False(t, got.Before(prev), "callStart went back: %v after %v", got, prev)
			assert.False(t, got.Before(before) || got.After(after), "callStart %v outside [%v, %v] by the monotonic clock", got, before, after)
			wallLag := before.Round(0).Sub(got.Round(0)) // wall clocks only
			assert.Less(t, wallLag, epochRefresh, "wall clock lags time.Now by %v", wallLag)
			prev = got
		}
		assert.NotNil(t, m.epoch.Load(), "the epoch was taken")
	})
	t.Run("a stale epoch is read again", func(t *testing.T) {
		m := newTestManager(t, Config{})
		old := time.Now().Add(-2 * epochRefresh)
		m.epoch.Store(&old)
		got := m.callStart()
		assert.Equal(t, got, *m.epoch.Load(), "callStart took a new epoch")
		assert.WithinDuration(t, time.Now(), got, epochRefresh)
	})
	t.Run("with an observer: the wall clock every time", func(t *testing.T) {
		m := newTestManager(t, Config{}, WithObserver(nilObserver{}))
		m.callStart()
		assert.Nil(t, m.epoch.Load(), "no epoch with an observer")
	})
	t.Run("a test clock is used as is", func(t *testing.T) {
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		m := newTestManager(t, Config{}, withClock(func() time.Time { return at }))
		assert.Equal(t, at, m.callStart())
	})
}

// BenchmarkCallStart compares callStart with time.Now, which it replaces
// at the start of every call.
func BenchmarkCallStart(b *testing.B) {
	m, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.Run("callStart", func(b *testing.B) {
		for b.Loop() {
			m.callStart()
		}
	})
	b.Run("time.Now", func(b *testing.B) {
		for b.Loop() {
			time.Now()
		}
	})
}
