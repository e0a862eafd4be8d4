package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/connmgr/connmgr"
	"github.com/connmgr/connmgr/redisstore"
)

// deadAddr returns a loopback address where nothing listens, so these
// examples run without a Redis server and show the failure policy.
func deadAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Open reads a config's redis block. With Redis unreachable, a fleet
// limit falls back to on_error: here a local bucket at a quarter of the
// fleet rate. No call waits longer than the 50 ms deadline.
func ExampleOpen() {
	s, err := redisstore.Open(connmgr.RedisConfig{URL: "redis://" + deadAddr() + "/0", OnError: "local", LocalShare: 0.25})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	fleet := connmgr.Limit{Rate: 40, Burst: 4} // the local bucket: 10/s, burst 1
	for i := range 3 {
		start := time.Now()
		r, err := s.Reserve(context.Background(), "partner-api", fleet, 0)
		fmt.Printf("call %d: admitted %v, error %v, within the deadline %v\n", i+1, r.OK, err, time.Since(start) < 100*time.Millisecond)
	}
	st := s.Stats()
	fmt.Printf("healthy %v, outages %d, policy %s\n", st.Healthy, st.Outages, st.OnError)
	// Output:
	// call 1: admitted true, error <nil>, within the deadline true
	// call 2: admitted false, error <nil>, within the deadline true
	// call 3: admitted false, error <nil>, within the deadline true
	// healthy false, outages 1, policy local
}

// New wraps a client you built (a redis.UniversalClient: single node,
// Cluster or Sentinel). Set ContextTimeoutEnabled so the per-operation
// deadline holds. The client stays yours to close.
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: deadAddr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	s := redisstore.New(rdb, redisstore.WithPrefix("billing:"), redisstore.WithOnError(redisstore.FallbackDeny))
	defer s.Close()
	r, err := s.Reserve(context.Background(), "partner-api", connmgr.Limit{Rate: 500, Burst: 50}, time.Second)
	fmt.Println("admitted:", r.OK, "error:", err)
	// Output:
	// admitted: false error: <nil>
}

// Connect is a connmgr.FleetConnector: a Manager whose config has a
// redis block opens its store with it, and closes it in Close.
func ExampleConnect() {
	cfg := connmgr.Config{Redis: connmgr.RedisConfig{URL: "redis://" + deadAddr() + "/0"}}
	m, err := connmgr.New(cfg, connmgr.WithFleetConnector(redisstore.Connect))
	if err != nil {
		panic(err)
	}
	fmt.Println("opened; Redis down is an outage, not an error:", m.Close())
	// Output:
	// opened; Redis down is an outage, not an error: <nil>
}

// Cache gives the cache plugin a store shared by the fleet. While Redis
// is unreachable, every lookup misses.
func ExampleStore_Cache() {
	s, err := redisstore.Open(connmgr.RedisConfig{URL: "redis://" + deadAddr() + "/0"})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	c := s.Cache("payments", redisstore.WithMaxValueSize(64<<10))
	_, ok, _ := c.Get(context.Background(), "GET https://pay.internal/v1/rates")
	fmt.Println("hit:", ok)
	fmt.Println("too large:", c.Set(context.Background(), "k", make([]byte, 65<<10), time.Minute))
	// Output:
	// hit: false
	// too large: redisstore: cache value too large
}
