//go:build !race

package pipeline_test

// raceEnabled: this test binary runs under the race detector.
const raceEnabled = false
