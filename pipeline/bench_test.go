package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
)

// BenchmarkCancelLatency measures the time from cancelling ctx during
// generation to the end of the token iterator (reported as cancel-µs).
func BenchmarkCancelLatency(b *testing.B) {
	p, _, _ := newPipeline(b, testmodel.ProjectorIdefics3, pipeline.Options{})
	ban := eogBan(b, p)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		st := p.Stream(ctx, pipeline.Input{Text: "Go on forever."}, pipeline.GenerateOptions{MaxTokens: 0, Sampler: sampler.Config{LogitBias: ban}})
		var at time.Time
		n := 0
		for _, err := range st.Tokens() {
			if err != nil {
				break
			}
			if n++; n == 2 {
				at = time.Now()
				cancel()
			}
		}
		total += time.Since(at)
		cancel()
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "cancel-µs")
}

// BenchmarkRunWithImage answers one image + text input with 16 tokens on
// the tiny preset, without reuse of the previous call's cache (a new image
// each time).
func BenchmarkRunWithImage(b *testing.B) {
	p, _, _ := newPipeline(b, testmodel.ProjectorIdefics3, pipeline.Options{})
	for i := 0; i < b.N; i++ {
		_, err := p.Run(context.Background(), pipeline.Input{Text: "Describe.", Images: []pipeline.Image{pipeline.ImageOf(picture(64, 64, uint8(i)))}},
			pipeline.GenerateOptions{MaxTokens: 16})
		if err != nil {
			b.Fatal(err)
		}
	}
}
