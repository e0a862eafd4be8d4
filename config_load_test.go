package connmgr

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The entry points: files by extension, bytes by format, errors reading.

func TestLoadConfigYAMLAndJSONAreEqual(t *testing.T) {
	t.Setenv("TOKEN", "tok")
	dir := t.TempDir()
	want := fullConfig()
	for _, name := range []string{"c.yaml", "c.yml", "C.YAML"} {
		got, err := LoadConfig(writeFile(t, dir, name, fullYAML))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
	got, err := LoadConfig(writeFile(t, dir, "c.json", fullJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("json:\n got %+v\nwant %+v", got, want)
	}
	// An empty list is kept as such: it does not inherit.
	if rs := got.Endpoints["api.example.com"].Retry.RetryOn; rs == nil || len(rs) != 0 {
		t.Errorf("retry_on: [] decoded as %#v, want an empty non-nil list", rs)
	}
}

func TestLoadConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := LoadConfig(writeFile(t, dir, "c.toml", "a = 1")); err == nil || !strings.Contains(err.Error(), ".yaml, .yml or .json") {
		t.Errorf("unknown extension: err = %v", err)
	}
	big := writeFile(t, dir, "big.yaml", "# "+strings.Repeat("x", maxConfigFileSize)+"\n{}\n")
	if _, err := LoadConfig(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge file: err = %v", err)
	}
	p := writeFile(t, dir, "bad.yaml", "default:\n  timeout: 5\n")
	_, err := LoadConfig(p)
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Source != p {
		t.Fatalf("err = %v, want a *ConfigError with Source %s", err, p)
	}
	if want := "connmgr: invalid config in " + p + ": line 2: default.timeout: a duration needs a unit"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message = %q, want prefix %q", err.Error(), want)
	}
}

func TestParseConfigPublic(t *testing.T) {
	cfg, err := ParseConfig([]byte("default: {timeout: 1s}"), "yaml")
	if err != nil || cfg.Default.Timeout != time.Second {
		t.Errorf("cfg = %+v, err = %v", cfg.Default, err)
	}
	cfg, err = ParseConfig([]byte(`{"default": {"timeout": "2s"}}`), "json")
	if err != nil || cfg.Default.Timeout != 2*time.Second {
		t.Errorf("cfg = %+v, err = %v", cfg.Default, err)
	}
}

func TestParseConfigTabsInJSON(t *testing.T) {
	// Go's json.MarshalIndent(v, "", "\t") output must load: tabs are
	// not allowed in YAML indentation, but a .json file is read as JSON.
	src := "{\n\t\"default\": {\n\t\t\"timeout\": \"3s\"\n\t}\n}\n"
	cfg, err := parseConfig([]byte(src), "json", "f", "", fakeEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Default.Timeout != 3*time.Second {
		t.Errorf("timeout = %v, want 3s", cfg.Default.Timeout)
	}
}
