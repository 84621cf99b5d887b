package vlmkern

// AttentionCheck describes one flash-attention graph (Q F32, K and V F16, no
// mask) and receives how far each kernel's output is from attention
// computed in double precision, and their speed.
type AttentionCheck struct {
	DK, DV, Queries, Keys, Heads int
	Threads, Reps                int
	Seed                         uint64
	QScale                       float32 // Q uniform in ±QScale (K, V in ±1); 0 means 1

	VLMRMS, VLMMax   float64 // vlm's kernel: relative RMS and largest error
	GGMLRMS, GGMLMax float64 // ggml's kernel
	BetweenRMS       float64 // vlm's against ggml's, relative RMS
	VLMMs, GGMLMs    float64 // best time of one graph, each kernel
}
