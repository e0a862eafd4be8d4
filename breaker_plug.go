package connmgr

// Breaker is a circuit breaker in two phases (gobreaker's
// TwoStepCircuitBreaker): Allow admits an attempt or refuses it with an
// error, and done reports that attempt's outcome exactly once. The
// built-in breaker is the default; WithBreakerFactory replaces it.
//
// An error from Allow refuses the attempt: it reaches the caller as a
// *CircuitOpenError (wrapping the breaker's error when it is not one).
type Breaker interface {
	Allow() (done func(Outcome), err error)
}

// BreakerFactory makes the breaker for one upstream of one endpoint. It
// is called once per upstream, when the upstream is first used.
type BreakerFactory func(endpoint, upstream string) Breaker

// WithBreakerFactory replaces the built-in breaker with the factory's, for
// every endpoint whose circuit_breaker is enabled.
func WithBreakerFactory(f BreakerFactory) Option {
	return optionFunc(func(o *options) { o.breakerFactory = f })
}
