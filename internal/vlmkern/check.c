//go:build cgo && !darwin && amd64 && !vlm_march

// A check of the flash-attention kernels against attention computed in
// double precision, and their timings, on one ggml graph of given shapes.

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "missing.h"

#include "ggml.h"
#include "ggml-cpu.h"

#include "check.h"

void vlm_fattn_set_ggml(int on);
int vlm_fattn_get_ggml(void);

static double now_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s) {
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static float rng_unit(uint64_t *s) { return (float)((rng_next(s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f; }

static void errors(const float *got, const double *want, int64_t n, double *rms, double *maxrel) {
	double se = 0, sw = 0, me = 0, mw = 0;
	for (int64_t i = 0; i < n; i++) {
		const double d = got[i] - want[i];
		se += d * d;
		sw += want[i] * want[i];
		me = fabs(d) > me ? fabs(d) : me;
		mw = fabs(want[i]) > mw ? fabs(want[i]) : mw;
	}
	*rms = sqrt(se / sw);
	*maxrel = me / mw;
}

int vlm_fattn_check(vlm_fattn_check_args *a) {
	const int64_t DK = a->dk, DV = a->dv, NQ = a->nq, NKV = a->nkv, NH = a->nh;
	const size_t mem = (size_t)(NQ * NH * DK * 4 + NKV * NH * (DK + DV) * 2 + NQ * NH * DV * 4) + 16 * 1024 * 1024;
	struct ggml_init_params ip = {mem, NULL, false};
	struct ggml_context *ctx = ggml_init(ip);
	if (ctx == NULL) {
		return -1;
	}
	// As a ViT builds it: Q a permuted view of [D, heads, queries], K and V
	// F16 [D, keys, heads].
	struct ggml_tensor *q3 = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, DK, NH, NQ);
	struct ggml_tensor *k = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, DK, NKV, NH);
	struct ggml_tensor *v = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, DV, NKV, NH);
	uint64_t seed = a->seed | 1;
	float *qd = q3->data;
	for (int64_t i = 0; i < DK * NH * NQ; i++) {
		qd[i] = rng_unit(&seed) * a->qscale;
	}
	ggml_fp16_t *kd = k->data, *vd = v->data;
	for (int64_t i = 0; i < DK * NKV * NH; i++) {
		kd[i] = ggml_fp32_to_fp16(rng_unit(&seed));
	}
	for (int64_t i = 0; i < DV * NKV * NH; i++) {
		vd[i] = ggml_fp32_to_fp16(rng_unit(&seed));
	}
	const float scale = 1.0f / sqrtf((float)DK);
	struct ggml_tensor *q = ggml_permute(ctx, q3, 0, 2, 1, 3);
	struct ggml_tensor *out = ggml_flash_attn_ext(ctx, q, k, v, NULL, scale, 0.0f, 0.0f);
	ggml_flash_attn_ext_set_prec(out, GGML_PREC_F32);
	struct ggml_cgraph *gf = ggml_new_graph(ctx);
	ggml_build_forward_expand(gf, out);

	// Exact attention, out laid out [DV, heads, queries].
	const int64_t n = DV * NH * NQ;
	double *want = malloc(n * sizeof(double));
	double *p = malloc(NKV * sizeof(double));
	float *got = malloc(n * sizeof(float));
	if (want == NULL || p == NULL || got == NULL) {
		free(want), free(p), free(got);
		ggml_free(ctx);
		return -1;
	}
	for (int64_t h = 0; h < NH; h++) {
		for (int64_t i = 0; i < NQ; i++) {
			const float *qi = qd + (i * NH + h) * DK;
			double m = -INFINITY, l = 0;
			for (int64_t j = 0; j < NKV; j++) {
				const ggml_fp16_t *kj = kd + (h * NKV + j) * DK;
				double s = 0;
				for (int64_t d = 0; d < DK; d++) {
					s += (double)qi[d] * ggml_fp16_to_fp32(kj[d]);
				}
				p[j] = s * scale;
				m = p[j] > m ? p[j] : m;
			}
			for (int64_t j = 0; j < NKV; j++) {
				p[j] = exp(p[j] - m);
				l += p[j];
			}
			double *o = want + (i * NH + h) * DV;
			for (int64_t d = 0; d < DV; d++) {
				o[d] = 0;
			}
			for (int64_t j = 0; j < NKV; j++) {
				const ggml_fp16_t *vj = vd + (h * NKV + j) * DV;
				for (int64_t d = 0; d < DV; d++) {
					o[d] += p[j] / l * ggml_fp16_to_fp32(vj[d]);
				}
			}
		}
	}

	const int was = vlm_fattn_get_ggml();
	int rc = 0;
	for (int which = 0; which < 2 && rc == 0; which++) {
		vlm_fattn_set_ggml(which == 1);
		double best = INFINITY;
		for (int r = 0; r < (a->reps > 0 ? a->reps : 1); r++) {
			const double t0 = now_s();
			if (ggml_graph_compute_with_ctx(ctx, gf, a->threads) != GGML_STATUS_SUCCESS) {
				rc = -2;
				break;
			}
			const double t = now_s() - t0;
			best = t < best ? t : best;
		}
		if (which == 0) {
			memcpy(got, out->data, n * sizeof(float));
			errors(got, want, n, &a->vlm_rms, &a->vlm_max);
			a->vlm_ms = best * 1e3;
		} else {
			errors(out->data, want, n, &a->ggml_rms, &a->ggml_max);
			a->ggml_ms = best * 1e3;
			double se = 0, sw = 0;
			const float *g = out->data;
			for (int64_t i = 0; i < n; i++) {
				se += (double)(got[i] - g[i]) * (got[i] - g[i]);
				sw += (double)g[i] * g[i];
			}
			a->between_rms = sqrt(se / sw);
		}
	}
	vlm_fattn_set_ggml(was);
	free(want), free(p), free(got);
	ggml_free(ctx);
	return rc;
}
