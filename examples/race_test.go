//go:build race

package examples_test

// raceEnabled says the test runs with -race, so the examples are built
// with it too.
const raceEnabled = true
