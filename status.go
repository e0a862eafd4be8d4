package connmgr

import "fmt"

// The status checks used in more than one place, written once.

// isServerError reports whether status is a 5xx: what the breaker counts
// as a failure by default, what the retry path treats as a failed
// attempt, and what stops an adaptive rate limit from rising.
func isServerError(status int) bool { return status >= 500 && status <= 599 }

// validStatus reports whether s is an HTTP status code (100..599).
func validStatus(s int) bool { return s >= 100 && s <= 599 }

// checkStatuses adds a problem for each entry of statuses, the list at
// path (such as "default.retry.retry_on"), that is not an HTTP status.
func checkStatuses(p *problems, path string, statuses []int) {
	for i, s := range statuses {
		if !validStatus(s) {
			p.add(fmt.Sprintf("%s[%d]", path, i), "must be an HTTP status 100..599, got %d", s)
		}
	}
}
