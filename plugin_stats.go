package connmgr

// StatsPlugin is a Plugin with numbers of its own; Manager.Stats
// includes them under Stats.Plugins by plugin name. PluginStats returns
// plain, JSON-encodable data and must not hold a lock held elsewhere
// while calling out.
type StatsPlugin interface {
	Plugin
	PluginStats() any
}

// pluginStats collects the numbers of the plugins that report some,
// each under the recovery helper: one whose PluginStats panics is left
// out.
func (m *Manager) pluginStats(plugins []Plugin) map[string]any {
	var out map[string]any
	for _, p := range plugins {
		sp, ok := p.(StatsPlugin)
		if !ok {
			continue
		}
		name := safeName(p)
		var v any
		var err error
		func() {
			defer m.recovered("plugin PluginStats", name, &err)
			v = sp.PluginStats()
		}()
		if err != nil {
			continue
		}
		if out == nil {
			out = make(map[string]any)
		}
		out[name] = v
	}
	return out
}

// attachPlugin calls a plugin's Attach under the recovery helper: a
// panic is an error, and the plugin stays out of the chain.
func (m *Manager) attachPlugin(a AttachPlugin) (err error) {
	defer m.recovered("plugin Attach", safeName(a), &err)
	return a.Attach(m)
}
