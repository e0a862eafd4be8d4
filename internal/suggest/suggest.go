// Package suggest says which known key a misspelt one probably meant.
package suggest

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Key returns what to append to "unknown key" for key, given the keys
// known at that place: ` (did you mean "timeout"?)` when one differs
// only in case, '-' for '_', or by at most two edits; else the list of
// known keys ("; known keys here: a, b").
func Key(key string, known []string) string {
	names := slices.Clone(known)
	slices.Sort(names)
	best, bestDist := "", 3
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	for _, k := range names {
		if norm(k) == norm(key) {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
		if d := EditDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return "; known keys here: " + strings.Join(names, ", ")
}

// EditDistance is the Levenshtein distance between a and b. It is for
// short keys only: past 64 bytes it is math.MaxInt.
func EditDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
