package redisstore

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/connmgr/connmgr/redisstore/internal/redistest"
)

// checkShares asserts the fleet admitted within 2% of the fleet rate over
// the run (plus the burst), and that no store was starved: each within
// 25% of an equal share, demand being equal.
func checkShares(t *testing.T, got []int) {
	t.Helper()
	total := 0
	for _, n := range got {
		total += n
	}
	want := fleetLimit.Rate*demandFor.Seconds() + float64(fleetLimit.Burst)
	t.Logf("admitted %v, total %d, want %.0f ±2%%", got, total, want)
	if math.Abs(float64(total)-want) > 0.02*want {
		t.Errorf("fleet admitted %d in %v; want %.0f ±2%%", total, demandFor, want)
	}
	share := float64(total) / float64(len(got))
	for i, n := range got {
		if math.Abs(float64(n)-share) > 0.25*share {
			t.Errorf("store %d admitted %d; want within 25%% of an equal share %.0f", i, n, share)
		}
	}
}

func TestFleetLimitFourStoresOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("5 s load test")
	}
	srv := redistest.Start(t)
	measureFleet(t, func(tag string) run {
		stores := []*Store{openLoad(t, srv), openLoad(t, srv), openLoad(t, srv), openLoad(t, srv)}
		return run{Counts: demandAll(stores, tag, time.Now().Add(100*time.Millisecond)), Outages: storeOutages(stores)}
	})
}

// TestFleetLimitTwoProcesses proves nothing is shared in memory: two
// stores here and two in a child process share one Redis limit.
func TestFleetLimitTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("5 s load test")
	}
	srv := redistest.Start(t)
	measureFleet(t, func(tag string) run {
		stores := []*Store{openLoad(t, srv), openLoad(t, srv)}
		start := time.Now().Add(time.Second)
		theirs := runChildProcess(t, "stores", srv.URL(), tag, start, 2)
		r := run{Counts: demandAll(stores, tag, start), Outages: storeOutages(stores)}
		return r.add(theirs())
	})
}

// run is one load measurement: admissions per store or Manager, Redis
// outages seen, and calls that failed otherwise than ErrRateLimited.
type run struct {
	Counts  []int `json:"counts"`
	Outages int64 `json:"outages"`
	Other   int64 `json:"other"`
}

func (r run) add(o run) run {
	r.Counts = append(r.Counts, o.Counts...)
	r.Outages += o.Outages
	r.Other += o.Other
	return r
}

// measureFleet runs a load measurement, on fresh keys each time, up to
// twice: a run during which a store lost Redis (a loaded machine stalled
// the server past the deadline) measured the on_error fallback, not the
// fleet limit, and is run again. Two such runs fail the test.
func measureFleet(t *testing.T, measure func(tag string) run) {
	t.Helper()
	for attempt := 1; attempt <= 2; attempt++ {
		r := measure(fmt.Sprintf("fleet%d", attempt))
		if r.Outages > 0 {
			t.Logf("run %d: Redis was lost %d time(s) (a stalled machine): its counts %v measure the fallback; running again", attempt, r.Outages, r.Counts)
			continue
		}
		if r.Other != 0 {
			t.Errorf("%d calls failed with something other than ErrRateLimited", r.Other)
		}
		checkShares(t, r.Counts)
		return
	}
	t.Error("every run lost Redis: the machine is too loaded to measure the fleet limit")
}

func storeOutages(stores []*Store) int64 {
	var n int64
	for _, s := range stores {
		n += s.Stats().Outages
	}
	return n
}
