package connmgr

import "time"

// RateLimitConfig throttles the attempts sent to an endpoint: Rate tokens
// per Per, bursting to Burst. Each attempt, retries included, takes one
// token. Off when Rate is 0.
type RateLimitConfig struct {
	// Rate is the number of attempts allowed per Per. 0 inherits; default off.
	Rate float64 `yaml:"rate,omitempty" json:"rate,omitempty"`
	// Per is the period Rate is counted over. Default 1s.
	Per time.Duration `yaml:"per,omitempty" json:"per,omitempty"`
	// Burst is how many attempts may go at once after a quiet period.
	// Default: Rate per second, rounded up, at least 1.
	Burst int `yaml:"burst,omitempty" json:"burst,omitempty"`
	// MaxWait is how long an attempt may wait for a token before it fails
	// with ErrRateLimited. Default 0: fail at once.
	MaxWait time.Duration `yaml:"max_wait,omitempty" json:"max_wait,omitempty"`
	// Disabled switches an inherited limit off for this endpoint.
	Disabled *bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

func rateLimitDefaults() RateLimitConfig {
	return RateLimitConfig{Per: time.Second, Disabled: Bool(false)}
}

// validateRateLimit checks a rate_limit block's own fields.
func validateRateLimit(p *problems, path string, c RateLimitConfig) {
	if c.Rate < 0 {
		p.add(path+".rate", "must be >= 0, got %g", c.Rate)
	}
	if c.Per < 0 {
		p.add(path+".per", "must be > 0, got %v", c.Per)
	}
	if c.Burst < 0 {
		p.add(path+".burst", "must be >= 0, got %d", c.Burst)
	}
	if c.MaxWait < 0 {
		p.add(path+".max_wait", "must be >= 0, got %v", c.MaxWait)
	}
}
