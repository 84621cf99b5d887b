package pipeline_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/vlm-go/vlm/pipeline"
)

// A pipeline whose model runs in a supervised child process: a crash in
// llama.cpp ends the requests in flight with a retryable *CrashError
// instead of the program. The program calls isolate.Main() first thing in
// main (this test binary does in TestMain).
func Example_childProcess() {
	ctx := context.Background()
	modelPath, projectorPath := demoPair() // your model.gguf and mmproj.gguf

	p, err := pipeline.New(ctx, modelPath, projectorPath, pipeline.Options{
		Threads: 2,
		Process: pipeline.ChildProcess,
		// Five deaths within five minutes stop the restarts (the defaults).
		Supervisor: pipeline.Supervisor{CrashLoopDeaths: 5},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	for attempt := 0; attempt < 3; attempt++ {
		resp, err := p.Run(ctx, pipeline.Input{Text: "Hello"}, pipeline.GenerateOptions{MaxTokens: 4})
		var crash *pipeline.CrashError
		if errors.As(err, &crash) {
			// The child died (crash.Signal, crash.Log say how); it is being
			// restarted and the next attempt waits for it.
			continue
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(len(resp.Tokens), "tokens; ready:", p.Ready() == nil)
		return
	}
	// Output: 4 tokens; ready: true
}
