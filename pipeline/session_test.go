package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/pipeline"
)

// TestSessionCallsInsideStreamLoop: History, Reset and Close called in the
// body of the loop over a session's stream return (they used to deadlock
// on the session's lock, held across yield). History shows the
// conversation before the running turn; a turn during which the session
// was reset or closed is not recorded.
func TestSessionCallsInsideStreamLoop(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorMLP, pipeline.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		call    func(t *testing.T, s *pipeline.Session)
		history int // messages after the turn
	}{
		{"History", func(t *testing.T, s *pipeline.Session) {
			assert.Len(t, s.History(), 3, "system, user, assistant: the running turn is not in it yet")
		}, 5},
		{"Reset", func(t *testing.T, s *pipeline.Session) { assert.NoError(t, s.Reset()) }, 1},
		{"Close", func(t *testing.T, s *pipeline.Session) { assert.NoError(t, s.Close()) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := p.NewSession(pipeline.SessionOptions{System: "Be brief."})
			require.NoError(t, err)
			_, err = s.Send(ctx, pipeline.Input{Text: "Hello"}, pipeline.GenerateOptions{MaxTokens: 4})
			require.NoError(t, err)
			done := make(chan struct{})
			go func() {
				defer close(done)
				n := 0
				for _, err := range s.Stream(ctx, pipeline.Input{Text: "Again"}, pipeline.GenerateOptions{MaxTokens: 4}).Tokens() {
					if !assert.NoError(t, err) {
						return
					}
					if n++; n == 1 {
						tc.call(t, s)
					}
				}
			}()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Fatalf("%s inside the loop over the session's stream deadlocked", tc.name)
			}
			assert.Len(t, s.History(), tc.history)
		})
	}
}
