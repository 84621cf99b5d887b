package openai

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vlm-go/vlm/pipeline"
)

// metrics are the handler's Prometheus metrics.
type metrics struct {
	requests         *prometheus.CounterVec
	promptTokens     prometheus.Counter
	completionTokens prometheus.Counter
	ttft             prometheus.Histogram
	tpot             prometheus.Histogram
}

func newMetrics(reg *prometheus.Registry, p *pipeline.Pipeline) metrics {
	m := metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vlm_http_requests_total", Help: "API requests by path and HTTP status (499: the client went away).",
		}, []string{"path", "status"}),
		promptTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vlm_prompt_tokens_total", Help: "Prompt entries (text tokens and image embeddings) of answered requests.",
		}),
		completionTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vlm_completion_tokens_total", Help: "Tokens generated for answered requests.",
		}),
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vlm_time_to_first_token_seconds", Help: "Time from the request to its first answer token.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		tpot: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vlm_time_per_output_token_seconds", Help: "Time per answer token after the first.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
		}),
	}
	reg.MustRegister(m.requests, m.promptTokens, m.completionTokens, m.ttft, m.tpot,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vlm_queue_depth", Help: "Requests waiting for a sequence."},
			func() float64 { return float64(p.EngineStats().Waiting) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vlm_active_sequences", Help: "Requests being answered."},
			func() float64 { return float64(p.EngineStats().Active) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vlm_image_cache_hits_total", Help: "Pictures found in the image cache."},
			func() float64 { return float64(p.ImageCacheStats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vlm_image_cache_misses_total", Help: "Pictures prepared and encoded."},
			func() float64 { return float64(p.ImageCacheStats().Misses) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vlm_overloaded_total", Help: "Requests refused because the queue was full."},
			func() float64 { return float64(p.EngineStats().Overloaded) }),
	)
	return m
}
