package connmgrtest

import (
	"math/rand/v2"
	"net/http"
)

// Flaky returns a step function for NewServerFunc that answers request n
// with failure with probability failureRate, and with Step{} (200, empty
// body) otherwise. A failureRate <= 0 never fails; >= 1 always does.
//
// Whether request n fails depends only on seed and n (a PCG generator from
// math/rand/v2 seeded with both), so a run is reproducible: the same seed
// fails the same request numbers, whatever the concurrency and after
// Server.Reset.
func Flaky(seed uint64, failureRate float64, failure Step) func(n int64, r *http.Request) Step {
	return func(n int64, _ *http.Request) Step {
		if failureRate > 0 && rand.New(rand.NewPCG(seed, uint64(n))).Float64() < failureRate {
			return failure
		}
		return Step{}
	}
}
