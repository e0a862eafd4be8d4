package connmgr

import (
	"fmt"
	"slices"
)

// Options keyed by endpoint (WithTLSConfig, WithRateLimitKey,
// WithEndpointMiddleware, and WithRetryPolicy and WithBackoff given
// endpoints) name it as Config.Endpoints does. Their keys go through the
// same normalisation as the config's keys (normalizeKey: trimmed,
// lower-cased, "[::1]" read as "::1"), once, in New, so that the Manager
// finds an option under the key its endpoint has (endpoint.key); a key
// that cannot be normalised, or that names no configured endpoint, is an
// error naming the option and the key as given, never an option silently
// ignored.

// endpointKeyRef is one endpoint key an option gave: the option's name,
// the key as given and the key normalised.
type endpointKeyRef struct {
	option, raw, key string
}

// resolveEndpointKeys rewrites the maps of the options keyed by endpoint
// under normalised keys, and checks each against cc. New and Reload both
// run it (through prepare); the maps are rewritten only the first time,
// in New, before the Manager is shared: Reload only reads them.
func (o *options) resolveEndpointKeys(cc *compiledConfig) error {
	if o.keysResolved {
		return o.checkEndpointKeys(cc)
	}
	if err := checkTLSOptions(o); err != nil {
		return err
	}
	for name, fn := range o.keyFuncs {
		if fn == nil {
			return fmt.Errorf("connmgr: WithRateLimitKey(%q): nil KeyFunc", name)
		}
	}
	o.endpointKeys = nil
	var err error
	if o.tlsConfigs, err = normalizeOptionKeys("WithTLSConfig", o.tlsConfigs, &o.endpointKeys); err != nil {
		return err
	}
	for key, c := range o.tlsConfigs {
		if c == nil {
			delete(o.tlsConfigs, key) // WithTLSConfig(key, nil): no base
		}
	}
	if o.keyFuncs, err = normalizeOptionKeys("WithRateLimitKey", o.keyFuncs, &o.endpointKeys); err != nil {
		return err
	}
	if o.endpointMiddleware, err = normalizeOptionKeys("WithEndpointMiddleware", o.endpointMiddleware, &o.endpointKeys); err != nil {
		return err
	}
	if o.endpointRetryPolicy, err = normalizeOptionKeys("WithRetryPolicy", o.endpointRetryPolicy, &o.endpointKeys); err != nil {
		return err
	}
	if o.endpointBackoff, err = normalizeOptionKeys("WithBackoff", o.endpointBackoff, &o.endpointKeys); err != nil {
		return err
	}
	o.keysResolved = true
	return o.checkEndpointKeys(cc)
}

// checkEndpointKeys checks that every endpoint an option names is
// configured in cc ("default" always is): a reload that drops an endpoint
// an option names is refused, as New would refuse that config.
func (o *options) checkEndpointKeys(cc *compiledConfig) error {
	for _, r := range o.endpointKeys {
		if r.key == defaultKey {
			continue
		}
		if _, ok := cc.endpoints[r.key]; !ok {
			if r.raw != r.key {
				return fmt.Errorf("connmgr: %s(%q): no such endpoint in the config (read as %q)", r.option, r.raw, r.key)
			}
			return fmt.Errorf("connmgr: %s(%q): no such endpoint in the config", r.option, r.raw)
		}
	}
	return nil
}

// normalizeOptionKeys returns in with its keys normalised as endpoint
// keys, and records each in refs. Two keys that normalise alike (" API.test"
// and "api.test") are an error: which should win cannot be told.
func normalizeOptionKeys[V any](option string, in map[string]V, refs *[]endpointKeyRef) (map[string]V, error) {
	if len(in) == 0 {
		return in, nil
	}
	raws := make([]string, 0, len(in))
	for raw := range in {
		raws = append(raws, raw)
	}
	slices.Sort(raws) // the same error every time
	out := make(map[string]V, len(in))
	first := make(map[string]string, len(in))
	for _, raw := range raws {
		key, _, problem := normalizeKey(raw)
		if problem != "" {
			return nil, fmt.Errorf("connmgr: %s(%q): %s", option, raw, problem)
		}
		if prev, dup := first[key]; dup {
			return nil, fmt.Errorf("connmgr: %s(%q) and %s(%q) name the same endpoint %q: give it once", option, prev, option, raw, key)
		}
		first[key] = raw
		out[key] = in[raw]
		*refs = append(*refs, endpointKeyRef{option: option, raw: raw, key: key})
	}
	return out, nil
}
