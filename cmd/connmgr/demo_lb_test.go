package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestDemoLBScene(t *testing.T) {
	var out bytes.Buffer
	if err := demoLBScene(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	got := out.String()
	for _, want := range []string{
		"scene: load balancing over five upstreams",
		"up-2 dies (resets every connection)",
		"up-4 turns slow (40ms)",
		"both are fine again",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Phase 2: the dead upstream gets a sliver of the attempts, and the
	// client sees (almost) no failures. The bounds leave room for a
	// loaded CI machine (an even share is 20%); the exact targets are
	// TestLoadBalancingRidesOutADeadAndAFailingUpstream's.
	phases := regexp.MustCompile(`attempts: up-1 +([\d.]+)% up-2 +([\d.]+)% up-3 +([\d.]+)% up-4 +([\d.]+)% up-5 +([\d.]+)%\n    client: (\d+) calls, (\d+) failed`).FindAllStringSubmatch(got, -1)
	if len(phases) != 4 {
		t.Fatalf("found %d phase reports, want 4", len(phases))
	}
	pct := func(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }
	if share := pct(phases[1][2]); share > 8 {
		t.Errorf("the dead upstream got %.1f%% of the attempts while dead", share)
	}
	if share := pct(phases[2][4]); share > 14 {
		t.Errorf("the slow upstream got %.1f%% of the attempts while slow", share)
	}
	if share := pct(phases[3][2]); share < 3 {
		t.Errorf("the recovered upstream got only %.1f%% of the attempts after it came back", share)
	}
	for i, ph := range phases {
		calls, _ := strconv.Atoi(ph[6])
		failed, _ := strconv.Atoi(ph[7])
		if calls == 0 || float64(failed)/float64(calls) > 0.02 {
			t.Errorf("phase %d: %d of %d calls failed", i+1, failed, calls)
		}
	}
}
