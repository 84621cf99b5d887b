package openai

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vlm-go/vlm/pipeline"
)

// registerGatewayMetrics adds the gauges of the Kubernetes Gateway API
// Inference Extension's model-server protocol, under the names vLLM uses,
// which an unmodified endpoint picker reads by default:
//
//	vllm:num_requests_waiting   requests waiting for a sequence (the engine's queue)
//	vllm:num_requests_running   requests holding a sequence (at most the pipeline's Sequences)
//	vllm:kv_cache_usage_perc    KV cells reserved by running requests ÷ the context's cells, 0…1
//	vllm:cache_config_info      1, with block_size (the prefix-reuse granularity in
//	                            tokens: vlm reuses any prefix, so 1) and num_gpu_blocks
//	                            (the KV cache's cells ÷ block_size)
//
// Each carries model_name, as vLLM's do. vlm's own names (vlm_queue_depth,
// vlm_active_sequences, vlm_kv_cells_*) stay beside them.
func registerGatewayMetrics(reg *prometheus.Registry, p *pipeline.Pipeline, model string) {
	labels := prometheus.Labels{"model_name": model}
	const blockSize = 1
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vllm:num_requests_waiting", ConstLabels: labels,
			Help: "Requests waiting for a sequence (Gateway API Inference Extension: TotalQueuedRequests)."},
			func() float64 { return float64(p.EngineStats().Waiting) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vllm:num_requests_running", ConstLabels: labels,
			Help: "Requests holding a sequence (TotalRunningRequests)."},
			func() float64 { return float64(p.EngineStats().Active) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vllm:kv_cache_usage_perc", ConstLabels: labels,
			Help: "KV cache cells reserved by running requests, as a fraction of the cache, 0 to 1 (KVCacheUtilization)."},
			func() float64 { return kvUsage(p) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vlm_kv_cells", Help: "KV cache cells of the context."},
			func() float64 { return float64(p.EngineStats().KVCells) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vlm_kv_cells_reserved", Help: "KV cache cells reserved by running requests (prompt and room for the answer)."},
			func() float64 { return float64(p.EngineStats().KVCellsReserved) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vlm_kv_cells_cached", Help: "KV cache cells free sequences keep for prefix reuse."},
			func() float64 { return float64(p.EngineStats().KVCellsCached) }),
	)
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vllm:cache_config_info", ConstLabels: labels,
		Help: "KV cache configuration: block_size is the prefix-reuse granularity in tokens, num_gpu_blocks the cache's blocks."},
		[]string{"block_size", "num_gpu_blocks", "enable_prefix_caching"})
	info.WithLabelValues(strconv.Itoa(blockSize), strconv.Itoa(p.EngineStats().KVCells/blockSize), "True").Set(1)
	reg.MustRegister(info)
}

// kvUsage is the KV cache utilisation in [0, 1].
func kvUsage(p *pipeline.Pipeline) float64 {
	st := p.EngineStats()
	if st.KVCells <= 0 {
		return 0
	}
	return min(1, float64(st.KVCellsReserved)/float64(st.KVCells))
}
