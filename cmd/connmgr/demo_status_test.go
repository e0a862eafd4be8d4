package main

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/connmgr/connmgr"
)

func TestDemoStatusFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	_, code, ok := parseDemoFlags([]string{"--status", "nonsense"}, &stdout, &stderr)
	if ok || code != 2 {
		t.Fatalf("--status nonsense: ok=%v code=%d, want a usage error", ok, code)
	}
	if !strings.Contains(stderr.String(), "--status wants host:port") {
		t.Errorf("stderr = %q", stderr.String())
	}
	opts, _, ok := parseDemoFlags([]string{"--status", "127.0.0.1:0"}, &stdout, &stderr)
	if !ok || opts.status != "127.0.0.1:0" {
		t.Fatalf("--status 127.0.0.1:0: ok=%v status=%q", ok, opts.status)
	}
}

func TestDemoServesTheStatusPage(t *testing.T) {
	m, err := connmgr.New(connmgr.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var out bytes.Buffer
	stop, err := startStatusPage("127.0.0.1:0", m, newConsole(&out))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	u := regexp.MustCompile(`status page: (http://127\.0\.0\.1:\d+/) `).FindStringSubmatch(out.String())
	if u == nil {
		t.Fatalf("the demo did not say where the page is: %q", out.String())
	}
	resp, err := http.Get(u[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<title>connmgr status</title>") {
		t.Fatalf("GET %s: %d %.200s", u[1], resp.StatusCode, body)
	}
}
