package connmgr

// StatsPlugin is a Plugin with numbers of its own; Manager.Stats
// includes them under Stats.Plugins by plugin name. PluginStats returns
// plain, JSON-encodable data and must not hold a lock held elsewhere
// while calling out.
type StatsPlugin interface {
	Plugin
	PluginStats() any
}

// pluginStats collects the numbers of the plugins that report some; a
// plugin whose PluginStats panics is left out.
func pluginStats(plugins []Plugin) map[string]any {
	var out map[string]any
	for _, p := range plugins {
		sp, ok := p.(StatsPlugin)
		if !ok {
			continue
		}
		if name, v, ok := safePluginStats(sp); ok {
			if out == nil {
				out = make(map[string]any)
			}
			out[name] = v
		}
	}
	return out
}

func safePluginStats(sp StatsPlugin) (name string, v any, ok bool) {
	defer func() {
		if recover() != nil {
			name, v, ok = "", nil, false
		}
	}()
	return sp.Name(), sp.PluginStats(), true
}
