package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
)

func TestDemoBreakerScene(t *testing.T) {
	var out bytes.Buffer
	if err := demoBreakerScene(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		`breaker closed -> open \(upstream answered Service Unavailable \(503\)\)`,
		`call  4: refused at once, breaker open`,
		`breaker open -> half-open`,
		`breaker half-open -> open`,
		`breaker half-open -> closed`,
		`call 12: 200 OK`,
		`12 calls, \d reached the upstream; the breaker opened 2 times, refused \d+ calls, and is closed`,
	} {
		if !regexp.MustCompile(p).Match(out.Bytes()) {
			t.Errorf("output does not match %q:\n%s", p, out.String())
		}
	}
}

func TestDemoLimiterScene(t *testing.T) {
	var out bytes.Buffer
	if err := demoLimiterScene(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		`call 1: sent after \d+m?s`,
		`call 3: sent after \d+m?s`,
		`call 5, with a 100ms deadline: refused after \d+m?s: the wait for a token would pass its deadline`,
		`8 callers at once: [1-7] sent .*, [1-7] refused with ErrRateLimited`,
		`limiter: \d+ allowed \(\d+ after waiting\), \d+ refused; the upstream saw \d+ requests`,
	} {
		if !regexp.MustCompile(p).Match(out.Bytes()) {
			t.Errorf("output does not match %q:\n%s", p, out.String())
		}
	}
}
