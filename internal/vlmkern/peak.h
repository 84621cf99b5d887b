// vlm_fma_peak (peak.c): FP32 FLOP/s of FMA chains on threads threads.
double vlm_fma_peak(int threads, long iters, int *lanes);
