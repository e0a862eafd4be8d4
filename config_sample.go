package connmgr

import (
	_ "embed"
	"io"
)

//go:embed sample.yaml
var sampleConfig string

// SampleConfig returns a complete, commented sample configuration in
// YAML: every key, with its built-in default or an example. It loads and
// validates as it is, so it is a starting point for a config file
// (`connmgr config sample > connmgr.yaml`).
func SampleConfig() string { return sampleConfig }

// WriteSampleConfig writes SampleConfig to w.
func WriteSampleConfig(w io.Writer) error {
	_, err := io.WriteString(w, sampleConfig)
	return err
}
