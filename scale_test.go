package connmgr

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIdleEndpointsAreCheap checks the memory of configured endpoints
// that were never called: what an endpoint needs for calls (status
// counts, latency histogram, breakers per upstream) is made on first use.
func TestIdleEndpointsAreCheap(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("memory is measured without -race")
	}
	const n = 10000
	cfg := Config{Endpoints: make(map[string]EndpointConfig, n)}
	for i := 0; i < n; i++ {
		cfg.Endpoints[fmt.Sprintf("host-%d.example.com", i)] = EndpointConfig{}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	m, err := New(cfg)
	took := time.Since(start)
	require.NoError(t, err)
	runtime.GC()
	runtime.ReadMemStats(&after)
	perEndpoint := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d endpoints: %.0f B each, New took %v", n, perEndpoint, took)
	assert.Less(t, perEndpoint, 2048.0, "bytes per idle endpoint")
	runtime.KeepAlive(cfg)
	require.NoError(t, m.Close())
}
