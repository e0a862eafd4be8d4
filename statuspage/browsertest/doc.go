// Package browsertest drives a real headless Chromium through chromedp
// against the status page of a live Manager.
//
// It is a module of its own, as bench/ is, so that chromedp (which needs
// go 1.25) never enters the main module's requirements: users of
// connmgr keep go 1.24. .ci/run installs Debian's chromium when it is
// missing and runs these tests; outside CI a missing browser skips them
// loudly, under CI=true it fails them.
package browsertest
