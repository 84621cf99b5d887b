package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGuideRuns runs every step of the guide on the demo model.
func TestGuideRuns(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the demo model and the Q8_0 copy go here
	require.NoError(t, run(context.Background(), []string{"-n", "4"}))
}
