package redisstore

import (
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
	stores := []*Store{openLoad(t, srv), openLoad(t, srv), openLoad(t, srv), openLoad(t, srv)}
	got := demandAll(stores, "fleet", time.Now().Add(100*time.Millisecond))
	checkOutages(t, stores)
	checkShares(t, got)
}

// TestFleetLimitTwoProcesses proves nothing is shared in memory: two
// stores here and two in a child process share one Redis limit.
func TestFleetLimitTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("5 s load test")
	}
	srv := redistest.Start(t)
	stores := []*Store{openLoad(t, srv), openLoad(t, srv)}
	start := time.Now().Add(time.Second)
	theirs := runChildProcess(t, "stores", srv.URL(), start, 2)
	got := demandAll(stores, "fleet", start)
	checkOutages(t, stores)
	checkShares(t, append(got, theirs()...))
}
