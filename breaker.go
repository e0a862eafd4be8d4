package connmgr

import "time"

// BreakerConfig configures the circuit breaker kept for each upstream.
type BreakerConfig struct {
	// ConsecutiveFailures opens the breaker after this many failures in a
	// row. Default 5.
	ConsecutiveFailures int `yaml:"consecutive_failures,omitempty" json:"consecutive_failures,omitempty"`
	// RecoveryTimeout is how long the breaker stays open before it lets
	// probes through. Default 30s.
	RecoveryTimeout time.Duration `yaml:"recovery_timeout,omitempty" json:"recovery_timeout,omitempty"`
	// Disabled switches the breaker off for this endpoint.
	Disabled *bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

func breakerDefaults() BreakerConfig {
	return BreakerConfig{ConsecutiveFailures: 5, RecoveryTimeout: 30 * time.Second, Disabled: Bool(false)}
}

// validateBreaker checks a circuit_breaker block's own fields.
func validateBreaker(p *problems, path string, c BreakerConfig) {
	if c.ConsecutiveFailures < 0 {
		p.add(path+".consecutive_failures", "must be >= 1, got %d", c.ConsecutiveFailures)
	}
	if c.RecoveryTimeout < 0 {
		p.add(path+".recovery_timeout", "must be > 0, got %v", c.RecoveryTimeout)
	}
}
