package engine_test

import (
	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/llama"
)

// enginePerf reads the engine's performance counters the way its API
// offers.
func enginePerf(e *engine.Engine) (llama.Perf, error) { return e.Perf() }
