package connmgr

// RunningConfig returns the config the Manager runs now, as
// Config.Effective gives it (Default filled in from the built-in
// defaults, every endpoint filled in from Default, under its normalized
// key), with every secret redacted as Config.Redacted does, using the
// running config's own list of secret headers. It is safe to show: the
// status page prints it.
func (m *Manager) RunningConfig() Config {
	t := m.table.Load()
	r := m.redact.Load()
	out := Config{Default: redactEndpoint(*t.def.cfg, r)}
	if len(t.byKey) > 0 {
		out.Endpoints = make(map[string]EndpointConfig, len(t.byKey))
		for key, ep := range t.byKey {
			out.Endpoints[key] = redactEndpoint(*ep.cfg, r)
		}
	}
	return out
}
