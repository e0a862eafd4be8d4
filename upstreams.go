package connmgr

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/connmgr/connmgr/internal/quote"
	"go.yaml.in/yaml/v3"
)

// UpstreamConfig is one entry of EndpointConfig.Upstreams. In a file it
// is a plain string ("https://pay-1.internal:8443") or a mapping
// ({url: ..., weight: 3}).
//
// A URL "dns:///host:port" is a DNS name re-resolved every
// discovery.refresh: each address it resolves to is an upstream, sent
// the request's scheme, with the Host header and the TLS server name
// kept as host.
type UpstreamConfig struct {
	// URL is the upstream's scheme and authority, as
	// "https://10.0.0.5:8443", or "dns:///host:port". A path is not
	// allowed: requests keep theirs.
	URL string `yaml:"url" json:"url"`
	// Weight is the upstream's share under weighted_round_robin and
	// consistent_hash. 0 means 1.
	Weight int `yaml:"weight,omitempty" json:"weight,omitempty"`
}

// UnmarshalYAML accepts a plain string as well as the mapping.
func (u *UpstreamConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*u = UpstreamConfig{URL: s}
		return nil
	}
	type plain UpstreamConfig
	return n.Decode((*plain)(u))
}

// UnmarshalJSON accepts a plain string as well as the object.
func (u *UpstreamConfig) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*u = UpstreamConfig{URL: s}
		return nil
	}
	type plain UpstreamConfig
	return json.Unmarshal(b, (*plain)(u))
}

// MarshalYAML writes an entry without a weight as a plain string.
func (u UpstreamConfig) MarshalYAML() (any, error) {
	if u.Weight == 0 {
		return u.URL, nil
	}
	type plain UpstreamConfig
	return plain(u), nil
}

// MarshalJSON writes an entry without a weight as a plain string.
func (u UpstreamConfig) MarshalJSON() ([]byte, error) {
	if u.Weight == 0 {
		return json.Marshal(u.URL)
	}
	type plain UpstreamConfig
	return json.Marshal(plain(u))
}

// DiscoveryConfig says how often DNS upstreams are re-resolved.
type DiscoveryConfig struct {
	// Refresh is the time between two resolutions of each dns:/// upstream,
	// jittered by up to a tenth. 0 inherits; default 30s; at least 1s.
	Refresh time.Duration `yaml:"refresh,omitempty" json:"refresh,omitempty"`
}

// upstreamTarget is one parsed Upstreams entry.
type upstreamTarget struct {
	url    *url.URL // scheme and authority; nil for DNS
	weight int
	// dnsHost and dnsPort are set for "dns:///host:port".
	dnsHost, dnsPort string
}

// parseUpstream checks one Upstreams entry.
func parseUpstream(c UpstreamConfig) (upstreamTarget, error) {
	s := strings.TrimSpace(c.URL)
	if s == "" {
		return upstreamTarget{}, fmt.Errorf("url must be set")
	}
	u, err := url.Parse(s)
	if err != nil {
		return upstreamTarget{}, fmt.Errorf("not a URL: %s", quote.Short(s))
	}
	if u.User != nil {
		return upstreamTarget{}, fmt.Errorf("must not carry credentials: use auth")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return upstreamTarget{}, fmt.Errorf("must not have a query or fragment")
	}
	w := max(c.Weight, 1)
	if u.Scheme == "dns" {
		target := strings.TrimPrefix(u.Path, "/")
		if u.Host != "" || target == "" {
			return upstreamTarget{}, fmt.Errorf(`want "dns:///host:port", got %s`, quote.Short(s))
		}
		host, port, err := net.SplitHostPort(target)
		if err != nil || host == "" || port == "" {
			return upstreamTarget{}, fmt.Errorf(`want "dns:///host:port" with a port, got %s`, quote.Short(s))
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return upstreamTarget{}, fmt.Errorf("port must be a number 1..65535, got %s", quote.Short(port))
		}
		return upstreamTarget{weight: w, dnsHost: strings.ToLower(host), dnsPort: port}, nil
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return upstreamTarget{}, fmt.Errorf(`want an http:// or https:// URL (or dns:///host:port), got %s`, quote.Short(s))
	}
	if u.Host == "" || u.Hostname() == "" {
		return upstreamTarget{}, fmt.Errorf("URL must name a host, got %s", quote.Short(s))
	}
	if u.Path != "" && u.Path != "/" {
		return upstreamTarget{}, fmt.Errorf("URL must not have a path (requests keep theirs), got %s", quote.Short(s))
	}
	return upstreamTarget{url: &url.URL{Scheme: u.Scheme, Host: strings.ToLower(u.Host)}, weight: w}, nil
}

// validateUpstreams checks the load-balancing fields an endpoint (or the
// default block, when isDefault) sets itself.
func validateUpstreams(p *problems, path string, c EndpointConfig, isDefault bool) {
	if isDefault && len(c.Upstreams) > 0 {
		p.add(path+".upstreams", "the default block cannot have upstreams: give them to a named endpoint")
	}
	seen := map[string]int{}
	for i, uc := range c.Upstreams {
		ip := path + ".upstreams[" + strconv.Itoa(i) + "]"
		if uc.Weight < 0 {
			p.add(ip+".weight", "must be > 0, got %d", uc.Weight)
		}
		if uc.Weight > 1000 {
			p.add(ip+".weight", "must be <= 1000, got %d", uc.Weight)
		}
		t, err := parseUpstream(uc)
		if err != nil {
			p.add(ip+".url", "%s", err.Error())
			continue
		}
		key := "dns:///" + t.dnsHost + ":" + t.dnsPort
		if t.url != nil {
			key = t.url.Scheme + "://" + t.url.Host
		}
		if prev, dup := seen[key]; dup {
			p.add(ip+".url", "same upstream as upstreams[%d]", prev)
			continue
		}
		seen[key] = i
	}
	if c.Balancer != "" && !validBalancerName(c.Balancer) {
		p.add(path+".balancer", "not a balancer name: want one of %s, or a name registered with WithBalancer", strings.Join(builtinBalancers, ", "))
	}
	if c.HashKey != "" {
		if _, err := parseHashKey(c.HashKey); err != nil {
			p.add(path+".hash_key", "%s", err.Error())
		}
	}
	validateHealthCheck(p, path+".health_check", c.HealthCheck)
	validateOutlier(p, path+".outlier_detection", c.OutlierDetection)
	if c.PanicThreshold > 100 {
		p.add(path+".panic_threshold", "must be <= 100 (percent), got %d", c.PanicThreshold)
	}
	nonNegative(p, path+".slow_start", c.SlowStart)
	if r := c.Discovery.Refresh; r != 0 && r < time.Second {
		p.add(path+".discovery.refresh", "must be at least 1s, got %v", r)
	}
}

// validBalancerName accepts the built-in names and any name a user may
// register: lower-case letters, digits, '_', '-' and '.'.
func validBalancerName(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// checkBalancerKnown reports a balancer name that is neither built in nor
// registered with WithBalancer; New and Reload call it with their options.
func checkBalancerKnown(p *problems, path, name string, registered map[string]BalancerBuilder) {
	if name == "" || isBuiltinBalancer(name) {
		return
	}
	if _, ok := registered[name]; ok {
		return
	}
	p.add(path+".balancer", "unknown balancer %s: want one of %s, or a name registered with WithBalancer", quote.Short(name), strings.Join(builtinBalancers, ", "))
}
