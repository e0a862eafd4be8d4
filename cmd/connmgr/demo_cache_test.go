package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
)

func TestDemoCacheScene(t *testing.T) {
	var out bytes.Buffer
	if err := demoCacheScene(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		`20 calls over 5 URLs:\s+map\[hit:15 miss:5\]`,
		`validated with If-None-Match:\s+map\[revalidated:5\]`,
		`breaker open:\s+map\[stale-if-error:10\]`,
		`35 calls, 12 reached the upstream; hit ratio 43%, 5 revalidated \(304\), 10 stale served on error; breaker open`,
	} {
		if !regexp.MustCompile(p).Match(out.Bytes()) {
			t.Errorf("output does not match %q:\n%s", p, out.String())
		}
	}
}
