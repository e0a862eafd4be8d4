package cache

import (
	"context"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// TestMemoryBoundUnderChurn: 100,000 distinct keys of 1 KiB through a
// store of 8 MiB: what the store holds, by its own count and by the
// heap, stays within max_bytes + 10%.
func TestMemoryBoundUnderChurn(t *testing.T) {
	const maxBytes = 8 << 20
	c, err := New(Config{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := make([]byte, 1024)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	now := time.Now()
	for i := 0; i < 100_000; i++ {
		h := http.Header{"Cache-Control": {"max-age=60"}, "Content-Type": {"application/json"}, "Date": {"Thu, 18 Aug 2050 02:01:18 GMT"}, "Content-Length": {"1024"}}
		e := buildEntry(200, h, append([]byte(nil), body...), now, now, varyKey{}, true, time.Hour, 0)
		c.mem.save(context.Background(), "GET https://api.example.com/items/"+strconv.Itoa(i), (&variants{}).with(e, 8), time.Hour)
	}
	c.mem.c.CleanUp()
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	limit := int64(maxBytes * 11 / 10)
	t.Logf("store counts %d bytes in %d entries, heap grew %d bytes, %d evictions", c.mem.Bytes(), c.mem.Len(), held, c.mem.Evictions())
	if c.mem.Bytes() > limit {
		t.Errorf("the store counts %d bytes, want <= %d", c.mem.Bytes(), limit)
	}
	if held > limit {
		t.Errorf("the heap grew %d bytes, want <= %d", held, limit)
	}
	if c.Stats().Evictions < 90_000 {
		t.Errorf("evictions = %d, want most of the 100,000 keys", c.Stats().Evictions)
	}
}
