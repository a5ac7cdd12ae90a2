//go:build race

package daemon

// raceDetector reports whether the tests run under -race: a test too heavy
// to share the machine with the parallel race run skips there, and make
// test runs it on its own after it.
const raceDetector = true
