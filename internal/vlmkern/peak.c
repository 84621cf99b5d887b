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

// 12 chains of 4-cycle FMAs keep two FMA pipes busy.
__attribute__((target("avx512f"))) static float run512(long iters) {
	__m512 a[12];
	const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
	for (int i = 0; i < 12; i++) {
		a[i] = _mm512_set1_ps((float)i);
	}
	for (long n = 0; n < iters; n++) {
		for (int i = 0; i < 12; i++) {
			a[i] = _mm512_fmadd_ps(a[i], m, c);
		}
		__asm__ volatile("" : "+v"(a[0]), "+v"(a[1]), "+v"(a[2]), "+v"(a[3]), "+v"(a[4]), "+v"(a[5]));
	}
	float s = 0;
	for (int i = 0; i < 12; i++) {
		s += _mm512_reduce_add_ps(a[i]);
	}
	return s;
}

__attribute__((target("avx2,fma"))) static float run256(long iters) {
	__m256 a[12];
	const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
	for (int i = 0; i < 12; i++) {
		a[i] = _mm256_set1_ps((float)i);
	}
	for (long n = 0; n < iters; n++) {
		for (int i = 0; i < 12; i++) {
			a[i] = _mm256_fmadd_ps(a[i], m, c);
		}
		__asm__ volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+x"(a[4]), "+x"(a[5]));
	}
	float s = 0;
	float t[8];
	for (int i = 0; i < 12; i++) {
		_mm256_storeu_ps(t, a[i]);
		for (int j = 0; j < 8; j++) {
			s += t[j];
		}
	}
	return s;
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
