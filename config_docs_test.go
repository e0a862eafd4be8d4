package connmgr

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestConfigDocsMentionEveryKey keeps docs/config.md complete.
func TestConfigDocsMentionEveryKey(t *testing.T) {
	doc, err := os.ReadFile("docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range allConfigKeys() {
		name := path[strings.LastIndexByte(path, '.')+1:]
		// `name`, `block.name` or `name.sub`, as the docs write it.
		if !regexp.MustCompile("`([a-z_]+\\.)*" + regexp.QuoteMeta(name) + "[`.]").Match(doc) {
			t.Errorf("docs/config.md does not document %s", path)
		}
	}
}
