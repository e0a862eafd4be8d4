//go:build !race

package connmgr

const raceEnabled = false
