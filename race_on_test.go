//go:build race

package connmgr

// raceEnabled says the tests run with -race, which makes code several
// times slower: time limits are scaled by raceSlowdown.
const raceEnabled = true
