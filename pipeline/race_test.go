//go:build race

package pipeline_test

// raceEnabled: this test binary runs under the race detector, whose shadow
// memory makes resident-set bounds meaningless.
const raceEnabled = true
