package redisstore

import (
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/connmgr/connmgr"
)

// Connect opens a Store for a config file's `redis:` block; it is a
// connmgr.FleetConnector:
//
//	m, err := connmgr.New(cfg, connmgr.WithFleetConnector(redisstore.Connect))
//
// It builds a go-redis client from the URL ("redis://", "rediss://" or
// "unix://"), with its context deadlines honoured and its socket
// timeouts at the block's timeout, and does not wait for Redis: a server
// that is down at start is an outage like any other. The Store closes the
// client in Close. Errors never quote the URL.
func Connect(d connmgr.FleetDial) (connmgr.FleetStore, error) {
	s, err := Open(d.Redis, WithLogger(d.Logger))
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Open is Connect returning the concrete *Store, with further options
// applied after the block's.
func Open(r connmgr.RedisConfig, opts ...Option) (*Store, error) {
	if r.URL == "" {
		return nil, errors.New("redisstore: redis.url: must be set")
	}
	ro, err := redis.ParseURL(r.URL)
	if err != nil {
		// The parse error may quote the URL, password and all.
		return nil, errors.New("redisstore: redis.url: not a valid Redis URL")
	}
	policy, err := ParseOnError(r.OnError)
	if err != nil {
		return nil, err
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ro.ContextTimeoutEnabled = true
	ro.DialTimeout = max(timeout, 100*time.Millisecond)
	ro.ReadTimeout = timeout
	ro.WriteTimeout = timeout
	ro.PoolTimeout = timeout
	ro.MaxRetries = 1
	client := redis.NewClient(ro)
	all := []Option{WithTimeout(timeout), WithOnError(policy)}
	if r.Prefix != "" {
		all = append(all, WithPrefix(r.Prefix))
	}
	if r.LocalShare > 0 {
		all = append(all, WithLocalShare(r.LocalShare))
	}
	s := New(client, append(all, opts...)...)
	s.ownsClient = true
	return s, nil
}
