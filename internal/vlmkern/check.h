// The arguments and results of vlm_fattn_check (check.c).

typedef struct {
	int dk, dv, nq, nkv, nh, threads, reps;
	unsigned long long seed;
	float qscale;                  // Q's values are uniform in ±qscale (K and V in ±1)
	double vlm_rms, vlm_max;       // vlm's kernel against exact attention: relative RMS and max error
	double ggml_rms, ggml_max;     // ggml's kernel alike
	double between_rms;            // vlm's against ggml's
	double vlm_ms, ggml_ms;        // best time of one graph
} vlm_fattn_check_args;

int vlm_fattn_check(vlm_fattn_check_args *a);
