package bench

import (
	"reflect"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test or benchmark leaves a goroutine
// behind (a leaked connection, timer or breaker).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestContenders checks that every contender completes the workload, over
// the canned transport and over loopback, so a broken contender fails CI
// rather than producing a meaningless number.
func TestContenders(t *testing.T) {
	srv := newLoopbackServer(t)
	for _, c := range contenders() {
		t.Run(c.name, func(t *testing.T) {
			t.Run("in_process", func(t *testing.T) {
				cl := c.newClient(t, cannedTransport{})
				defer cl.close()
				for range 3 {
					if err := cl.fetch(cannedURL); err != nil {
						t.Fatalf("fetch: got %v, want nil", err)
					}
				}
			})
			t.Run("loopback", func(t *testing.T) {
				if c.inProcessOnly {
					t.Skip("in-process only")
				}
				cl := newLoopbackClient(t, c)
				defer cl.close()
				for range 3 {
					if err := cl.fetch(srv.URL + "/small"); err != nil {
						t.Fatalf("fetch: got %v, want nil", err)
					}
				}
			})
		})
	}
}

// TestCannedHeaderUntouched checks that no contender writes to the
// response header that every canned response shares.
func TestCannedHeaderUntouched(t *testing.T) {
	want := cannedHeader.Clone()
	for _, c := range contenders() {
		cl := c.newClient(t, cannedTransport{})
		if err := cl.fetch(cannedURL); err != nil {
			t.Errorf("%s: fetch: got %v, want nil", c.name, err)
		}
		cl.close()
		if !reflect.DeepEqual(cannedHeader, want) {
			t.Fatalf("%s changed the canned response header: got %v, want %v", c.name, cannedHeader, want)
		}
	}
}
