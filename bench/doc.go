// Package bench compares connmgr with plain net/http and with other Go
// resilience libraries on the same workload: GET a 64-byte response, read
// the body to EOF and close it.
//
// It is its own module so that the libraries it compares against never
// enter the dependency graph of github.com/connmgr/connmgr. Everything
// lives in _test.go files; see README.md for what each benchmark measures
// and run.sh for how the published numbers are produced.
package bench
