package openai

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vlm-go/vlm/pipeline"
)

// The label values of the request metrics come from these fixed sets, so
// that no request, however strange, creates a series: any other path is
// "other", any other status "other".
var (
	metricPaths    = []string{"/v1/chat/completions", "/v1/completions", "/v1/models", "other"}
	metricStatuses = []int{200, 400, 401, 404, 405, 408, 413, 429, 499, 500, 503}
	// bodyErrorReasons label vlm_http_body_errors_total.
	bodyErrorReasons = []string{bodyTimeout, bodyTooLarge, bodyBroken}
)

const (
	bodyTimeout  = "timeout"   // slower than Options.BodyTimeout
	bodyTooLarge = "too_large" // over Options.MaxBodyBytes
	bodyBroken   = "broken"    // the client's error (bad chunked encoding, hang-up)
)

// pathLabel is the metrics' path label for a request path.
func pathLabel(path string) string {
	switch path {
	case "/v1/chat/completions", "/v1/completions", "/v1/models":
		return path
	}
	return "other"
}

// statusLabel is the metrics' status label for a status code.
func statusLabel(code int) string {
	for _, s := range metricStatuses {
		if s == code {
			return strconv.Itoa(code)
		}
	}
	return "other"
}

// metrics are the handler's Prometheus metrics.
type metrics struct {
	requests         *prometheus.CounterVec
	bodyErrors       *prometheus.CounterVec
	promptTokens     prometheus.Counter
	completionTokens prometheus.Counter
	ttft             prometheus.Histogram
	tpot             prometheus.Histogram
	refused          atomic.Int64 // 429s of the handler's own admission check
}

func newMetrics(reg *prometheus.Registry, p *pipeline.Pipeline) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vlm_http_requests_total", Help: "API requests by path and HTTP status (499: the client went away; unknown paths are \"other\").",
		}, []string{"path", "status"}),
		bodyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vlm_http_body_errors_total",
			Help: "Request bodies cut off before their end: timeout (slower than the body deadline), too_large, broken (the client's error).",
		}, []string{"reason"}),
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
	// Every series exists from the start: none is ever added by a request.
	for _, path := range metricPaths {
		for _, code := range metricStatuses {
			m.requests.WithLabelValues(path, strconv.Itoa(code))
		}
		m.requests.WithLabelValues(path, "other")
	}
	for _, r := range bodyErrorReasons {
		m.bodyErrors.WithLabelValues(r)
	}
	reg.MustRegister(m.requests, m.bodyErrors, m.promptTokens, m.completionTokens, m.ttft, m.tpot,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vlm_queue_depth", Help: "Requests waiting for a sequence."},
			func() float64 { return float64(p.EngineStats().Waiting) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vlm_active_sequences", Help: "Requests being answered."},
			func() float64 { return float64(p.EngineStats().Active) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vlm_image_cache_hits_total", Help: "Pictures found in the image cache."},
			func() float64 { return float64(p.ImageCacheStats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vlm_image_cache_misses_total", Help: "Pictures prepared and encoded."},
			func() float64 { return float64(p.ImageCacheStats().Misses) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vlm_overloaded_total",
			Help: "Requests refused because the queue was full (by the handler before any preparation, or by the engine)."},
			func() float64 { return float64(p.EngineStats().Overloaded + m.refused.Load()) }),
	)
	return m
}
