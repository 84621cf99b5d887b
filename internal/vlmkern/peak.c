//go:build cgo && !darwin && amd64 && !vlm_march

// The CPU's FP32 FMA peak, measured: independent FMA chains on every
// thread, as wide as the CPU has (AVX-512: 16 lanes, else AVX2: 8).

#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "peak.h"

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
	long iters;
	int wide;
	double seconds;
	float sink;
} job;

// 12 independent chains of FMAs (latency 4, two pipes: 8 in flight), in
// named registers: an array here would be kept in memory.
#define CHAINS(T, SET, FMA, X) \
	T a0 = SET(0), a1 = SET(1), a2 = SET(2), a3 = SET(3), a4 = SET(4), a5 = SET(5); \
	T a6 = SET(6), a7 = SET(7), a8 = SET(8), a9 = SET(9), a10 = SET(10), a11 = SET(11); \
	const T m = SET(0.999999f), c = SET(1e-7f); \
	for (long n = 0; n < iters; n++) { \
		a0 = FMA(a0, m, c), a1 = FMA(a1, m, c), a2 = FMA(a2, m, c), a3 = FMA(a3, m, c); \
		a4 = FMA(a4, m, c), a5 = FMA(a5, m, c), a6 = FMA(a6, m, c), a7 = FMA(a7, m, c); \
		a8 = FMA(a8, m, c), a9 = FMA(a9, m, c), a10 = FMA(a10, m, c), a11 = FMA(a11, m, c); \
		__asm__ volatile("" : "+" X(a0), "+" X(a1), "+" X(a2), "+" X(a3), "+" X(a4), "+" X(a5)); \
		__asm__ volatile("" : "+" X(a6), "+" X(a7), "+" X(a8), "+" X(a9), "+" X(a10), "+" X(a11)); \
	} \
	T sum = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;

__attribute__((target("avx512f"))) static float run512(long iters) {
	CHAINS(__m512, _mm512_set1_ps, _mm512_fmadd_ps, "v")
	return _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx2,fma"))) static float run256(long iters) {
	CHAINS(__m256, _mm256_set1_ps, _mm256_fmadd_ps, "x")
	float t[8];
	_mm256_storeu_ps(t, sum);
	return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

static void *worker(void *p) {
	job *j = p;
	const double t0 = now_s();
	j->sink = j->wide ? run512(j->iters) : run256(j->iters);
	j->seconds = now_s() - t0;
	return NULL;
}

double vlm_fma_peak(int threads, long iters, int *lanes) {
	__builtin_cpu_init();
	const int wide = __builtin_cpu_supports("avx512f");
	*lanes = wide ? 16 : 8;
	if (threads < 1 || threads > 256) {
		return 0;
	}
	pthread_t tid[256];
	job jobs[256];
	for (int i = 0; i < threads; i++) {
		jobs[i] = (job){.iters = iters, .wide = wide};
		if (pthread_create(&tid[i], NULL, worker, &jobs[i]) != 0) {
			return 0;
		}
	}
	double flops = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		flops += 2.0 * 12 * *lanes * (double)iters / jobs[i].seconds;
	}
	return flops;
}
