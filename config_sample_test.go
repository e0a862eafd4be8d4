package connmgr

import (
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The sample config, and every key documented.

// configKeys lists every key a config file can hold, as "block.key"
// paths (endpoint blocks are spelt as the default block).
func configKeys(t reflect.Type, prefix string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == durationType {
		return
	}
	for name, f := range yamlFields(t) {
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		out[p] = true
		ft := f.Type
		if ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct {
			continue // endpoints: same keys as default
		}
		configKeys(ft, p, out)
	}
}

func allConfigKeys() []string {
	m := map[string]bool{}
	configKeys(reflect.TypeOf(Config{}), "", m)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestSampleConfigLoadsAsIs(t *testing.T) {
	// No variable the sample names is needed: each has a default.
	cfg, err := parseConfig([]byte(SampleConfig()), "yaml", "sample.yaml", "", fakeEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// The default block states the built-in defaults: resolving it
	// changes nothing.
	eff, err := cfg.Effective()
	if err != nil {
		t.Fatal(err)
	}
	def := eff.Default
	def.Headers = nil
	if want := builtinDefaults(); !reflect.DeepEqual(def, want) {
		t.Errorf("the sample's default block is not the built-in defaults:\n got %+v\nwant %+v", def, want)
	}
	var b strings.Builder
	if err := WriteSampleConfig(&b); err != nil || b.String() != SampleConfig() {
		t.Errorf("WriteSampleConfig wrote %d bytes, err %v", b.Len(), err)
	}
}

// TestSampleConfigMentionsEveryKey keeps the sample complete: a key added
// to Config must be added to sample.yaml (set, or in a comment).
func TestSampleConfigMentionsEveryKey(t *testing.T) {
	sample := SampleConfig()
	for _, path := range allConfigKeys() {
		name := path[strings.LastIndexByte(path, '.')+1:]
		if !regexp.MustCompile(`(?m)(^|[\s{,#])` + regexp.QuoteMeta(name) + `:`).MatchString(sample) {
			t.Errorf("sample.yaml does not mention %s", path)
		}
	}
}
