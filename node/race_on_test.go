//go:build race

package node

// raceDetector reports whether the tests run under -race, which slows
// cryptography tenfold: tests sized for real networks shrink under it and
// make test runs them again at full size without it.
const raceDetector = true
