package connmgr

import (
	"strings"

	"github.com/connmgr/connmgr/internal/redact"
)

// Effective returns cfg as a Manager would run it: Default filled in
// from the built-in defaults, and every endpoint filled in from Default,
// under its normalized (lower-case) key. It returns the *ConfigError of
// Validate for an invalid cfg. Print it through Redacted.
func (cfg Config) Effective() (Config, error) {
	cc, err := compile(cfg)
	if err != nil {
		return Config{}, err
	}
	out := Config{
		Default: cc.def,
		Redact: RedactConfig{
			Headers:   append([]string(nil), cfg.Redact.Headers...),
			QueryKeys: append([]string(nil), cfg.Redact.QueryKeys...),
		},
		Redis: effectiveRedis(cfg.Redis),
	}
	if len(cc.endpoints) > 0 {
		out.Endpoints = make(map[string]EndpointConfig, len(cc.endpoints))
		for key, ce := range cc.endpoints {
			out.Endpoints[key] = ce.cfg
		}
	}
	return out, nil
}

// Redacted returns a copy of cfg with every secret replaced by
// "REDACTED": bearer tokens, API keys, basic auth user names and
// passwords, TLS key passwords, and the values of secret headers
// (Authorization, Cookie and the others always redacted, each API key
// header, and Redact.Headers). A user name is masked too because some
// APIs take the secret as the user name and no password (Stripe's keys,
// GitHub's tokens). Use it before a Config reaches a log, a terminal or
// a status page.
func (cfg Config) Redacted() Config {
	extra := append([]string(nil), cfg.Redact.Headers...)
	for _, ec := range cfg.Endpoints {
		if ec.Auth.APIKeyHeader != "" {
			extra = append(extra, ec.Auth.APIKeyHeader)
		}
	}
	if cfg.Default.Auth.APIKeyHeader != "" {
		extra = append(extra, cfg.Default.Auth.APIKeyHeader)
	}
	r := redact.New(extra, cfg.Redact.QueryKeys)
	out := cfg
	out.Default = redactEndpoint(cfg.Default, r)
	out.Redis = redactRedis(cfg.Redis)
	if cfg.Endpoints != nil {
		out.Endpoints = make(map[string]EndpointConfig, len(cfg.Endpoints))
		for k, ec := range cfg.Endpoints {
			out.Endpoints[k] = redactEndpoint(ec, r)
		}
	}
	return out
}

func redactEndpoint(ec EndpointConfig, r *redact.Redactor) EndpointConfig {
	mask := func(s *string) {
		if *s != "" {
			*s = redact.Mask
		}
	}
	mask(&ec.Auth.BearerToken)
	mask(&ec.Auth.APIKey)
	mask(&ec.Auth.Username)
	mask(&ec.Auth.Password)
	mask(&ec.TLS.KeyPassword)
	if ec.Headers != nil {
		h := make(map[string]string, len(ec.Headers))
		for name, v := range ec.Headers {
			if r.SecretHeader(name) || strings.EqualFold(name, ec.Auth.APIKeyHeader) {
				v = redact.Mask
			}
			h[name] = v
		}
		ec.Headers = h
	}
	return ec
}
