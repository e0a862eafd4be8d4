package connmgr

import (
	"context"
	"sync/atomic"
	"time"
)

// ConcurrencyStats describes an endpoint's concurrency cap.
type ConcurrencyStats struct {
	// Max is the cap; MaxQueue how many calls may wait for a slot.
	Max      int `json:"max"`
	MaxQueue int `json:"max_queue"`
	// InUse is the number of slots held; Queued the calls waiting.
	InUse  int   `json:"in_use"`
	Queued int64 `json:"queued"`
	// Rejected counts calls refused with ErrConcurrencyLimit.
	Rejected uint64 `json:"rejected"`
}

// bulkhead caps the calls in flight to an endpoint, with an optional
// bounded queue of calls waiting for a slot (first come, first served).
// A slot is held until the call finishes: its response body closed or
// read to the end, or its error returned.
type bulkhead struct {
	slots     chan struct{}
	maxQueue  int64
	queueWait time.Duration // 0: until the call's context ends
	queued    atomic.Int64
	rejected  atomic.Uint64
}

func newBulkhead(maxConcurrent, maxQueue int, queueWait time.Duration) *bulkhead {
	return &bulkhead{
		slots:     make(chan struct{}, maxConcurrent),
		maxQueue:  int64(max(maxQueue, 0)),
		queueWait: max(queueWait, 0),
	}
}

// acquire takes a slot: at once, or by queueing up to queueWait (and never
// past the call's deadline, zero for none) when the queue has room. It
// returns ErrConcurrencyLimit when no slot could be had in that time, or
// ctx's cause when the caller gave up first.
func (b *bulkhead) acquire(ctx context.Context, deadline time.Time, now func() time.Time) error {
	select {
	case b.slots <- struct{}{}:
		return nil
	default:
	}
	if b.maxQueue == 0 {
		b.rejected.Add(1)
		return ErrConcurrencyLimit
	}
	if b.queued.Add(1) > b.maxQueue {
		b.queued.Add(-1)
		b.rejected.Add(1)
		return ErrConcurrencyLimit
	}
	defer b.queued.Add(-1)
	var expired <-chan time.Time
	wait := b.queueWait
	if d, ok := ctx.Deadline(); ok && !deadline.Before(d) {
		deadline = time.Time{} // the caller's own: ctx.Done reports it as theirs
	}
	if !deadline.IsZero() {
		left := deadline.Sub(now())
		if left <= 0 {
			b.rejected.Add(1)
			return ErrConcurrencyLimit
		}
		if wait <= 0 || left < wait {
			wait = left // the total timeout (a CallOptions one too) bounds the queue
		}
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		expired = t.C
	}
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-expired:
		b.rejected.Add(1)
		return ErrConcurrencyLimit
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// release gives a slot back.
func (b *bulkhead) release() { <-b.slots }

func (b *bulkhead) snapshot() ConcurrencyStats {
	return ConcurrencyStats{
		Max:      cap(b.slots),
		MaxQueue: int(b.maxQueue),
		InUse:    len(b.slots),
		Queued:   b.queued.Load(),
		Rejected: b.rejected.Load(),
	}
}
