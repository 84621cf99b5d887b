//go:build cgo && !darwin && amd64 && !vlm_march

// vlm's flash attention for ggml's CPU backend, AVX-512 (written for vlm,
// not derived from ggml's kernel).
//
// ggml's own CPU kernel (ops.cpp) walks one query at a time: a 64-long dot
// product per key, a scalar expf per key and an F16 accumulator per query.
// A vision encoder's attention has no mask and hundreds to thousands of
// queries per head, which that loop runs at a tenth of what the FMA units
// can do. This kernel does the same arithmetic as blocks: a block of queries
// against a block of keys is a small matrix product (F32 FMA, keys along the
// vector lanes), softmax is online across key blocks with a vector exp, and
// P·V is a second small product accumulated in F32.
//
// It takes the cases a ViT makes (Q F32, K and V F16, no mask, no sinks, no
// ALiBi, no logit softcap, head sizes multiple of 16 up to 256) and hands
// every other case, e.g. a text model's masked attention over the KV cache,
// to ggml's own AVX-512 copy, so results elsewhere stay ggml's.

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "missing.h"

#include "ggml.h"
#include "ggml-cpu-impl.h"

void ggml_compute_forward_flash_attn_ext__vlm_avx512(const struct ggml_compute_params *params, struct ggml_tensor *dst);

enum {
	QB = 64,   // queries per task
	KB = 256,  // keys per block of the online softmax
	RQ = 8,    // query rows of the Q·Kᵀ micro-kernel (× 32 keys)
	RO = 4,    // query rows of the P·V micro-kernel (× 64 values)
	DMAX = 256 // largest head size taken
};

// vlm_fattn_takes reports whether this kernel computes dst (else ggml's does).
int vlm_fattn_takes(const struct ggml_tensor *dst) {
	const struct ggml_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2];
	if (dst->src[3] != NULL || dst->src[4] != NULL) {
		return 0; // mask or sinks
	}
	if (q->type != GGML_TYPE_F32 || k->type != GGML_TYPE_F16 || v->type != GGML_TYPE_F16 || dst->type != GGML_TYPE_F32) {
		return 0;
	}
	float max_bias, softcap;
	memcpy(&max_bias, (const float *)dst->op_params + 1, sizeof(float));
	memcpy(&softcap, (const float *)dst->op_params + 2, sizeof(float));
	if (max_bias != 0.0f || softcap != 0.0f) {
		return 0;
	}
	const int32_t prec = dst->op_params[3];
	if (prec != GGML_PREC_DEFAULT && prec != GGML_PREC_F32) {
		return 0;
	}
	const int64_t DK = k->ne[0], DV = v->ne[0];
	if (DK % 16 != 0 || DV % 16 != 0 || DK > DMAX || DV > DMAX || q->ne[0] != DK) {
		return 0;
	}
	if (k->ne[1] != v->ne[1] || k->ne[1] < 1) {
		return 0;
	}
	if (q->nb[0] != sizeof(float) || k->nb[0] != 2 || v->nb[0] != 2) {
		return 0;
	}
	if (q->ne[2] % k->ne[2] != 0 || q->ne[3] % k->ne[3] != 0 || q->ne[2] % v->ne[2] != 0 || q->ne[3] % v->ne[3] != 0) {
		return 0;
	}
	// dst: [DV, heads, queries, batch], rows written as ggml's kernel does.
	if (dst->ne[0] != DV || dst->ne[1] != q->ne[2] || dst->ne[2] != q->ne[1] || !ggml_is_contiguous(dst)) {
		return 0;
	}
	return 1;
}

// Per-thread scratch, kept across calls (ggml's threads live as long as their
// pool) and freed when the thread ends.
typedef struct {
	size_t cap;            // floats in buf
	float *buf;
	const void *kv_k;      // the K/V head whose F32 copies buf holds (in this call)
	const void *kv_v;
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p) {
	scratch *s = p;
	free(s->buf);
	free(s);
}

static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }

static scratch *get_scratch(size_t floats) {
	pthread_once(&scratch_once, scratch_init);
	scratch *s = pthread_getspecific(scratch_key);
	if (s == NULL) {
		s = calloc(1, sizeof *s);
		if (s == NULL || pthread_setspecific(scratch_key, s) != 0) {
			free(s);
			return NULL;
		}
	}
	if (s->cap < floats) {
		free(s->buf);
		s->buf = aligned_alloc(64, ((floats * sizeof(float)) + 63) / 64 * 64);
		s->cap = s->buf ? floats : 0;
		s->kv_k = s->kv_v = NULL;
	}
	return s->buf ? s : NULL;
}

// exp for x ≤ 0 (and -inf → 0): n = round(x/ln2), r = x - n·ln2 in two
// parts, e^r by its Taylor series to degree 7 (|r| ≤ ln2/2: relative error
// under 2e-8 before rounding), then scaled by 2^n with vscalefps, which
// flushes to 0 below the normal range.
static inline __m512 exp_neg(__m512 x) {
	const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
	const __m512 ln2hi = _mm512_set1_ps(0.693359375f);
	const __m512 ln2lo = _mm512_set1_ps(-2.12194440e-4f);
	x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
	__m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, ln2hi, x);
	r = _mm512_fnmadd_ps(n, ln2lo, r);
	__m512 p = _mm512_set1_ps(1.0f / 5040);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

// S[RQ][nkp] = Qs[RQ][DK] · Kt[DK][nkp] (Kt: keys along rows, ldk floats apart).
static inline void qk_tile(const float *Qs, int64_t DK, const float *Kt, int64_t ldk, int64_t nkp, float *S, int64_t lds) {
	for (int64_t j = 0; j < nkp; j += 32) {
		__m512 a[RQ][2];
		for (int i = 0; i < RQ; i++) {
			a[i][0] = _mm512_setzero_ps();
			a[i][1] = _mm512_setzero_ps();
		}
		const float *kp = Kt + j;
		for (int64_t d = 0; d < DK; d++) {
			const __m512 k0 = _mm512_load_ps(kp + d * ldk);
			const __m512 k1 = _mm512_load_ps(kp + d * ldk + 16);
			for (int i = 0; i < RQ; i++) {
				const __m512 qv = _mm512_set1_ps(Qs[i * DK + d]);
				a[i][0] = _mm512_fmadd_ps(qv, k0, a[i][0]);
				a[i][1] = _mm512_fmadd_ps(qv, k1, a[i][1]);
			}
		}
		for (int i = 0; i < RQ; i++) {
			_mm512_store_ps(S + i * lds + j, a[i][0]);
			_mm512_store_ps(S + i * lds + j + 16, a[i][1]);
		}
	}
}

// O[RO][DV] += P[RO][nk] · V[nk][DV] (V rows DV floats apart).
static inline void pv_tile(const float *P, int64_t lds, const float *V, int64_t DV, int64_t nk, float *O) {
	for (int64_t c = 0; c < DV; c += 64) {
		const int nv = (int)((DV - c) >= 64 ? 4 : (DV - c) / 16);
		__m512 a[RO][4];
		for (int i = 0; i < RO; i++) {
			for (int u = 0; u < 4; u++) {
				a[i][u] = u < nv ? _mm512_load_ps(O + i * DV + c + 16 * u) : _mm512_setzero_ps();
			}
		}
		if (nv == 4) {
			for (int64_t j = 0; j < nk; j++) {
				const float *vp = V + j * DV + c;
				const __m512 v0 = _mm512_load_ps(vp), v1 = _mm512_load_ps(vp + 16);
				const __m512 v2 = _mm512_load_ps(vp + 32), v3 = _mm512_load_ps(vp + 48);
				for (int i = 0; i < RO; i++) {
					const __m512 p = _mm512_set1_ps(P[i * lds + j]);
					a[i][0] = _mm512_fmadd_ps(p, v0, a[i][0]);
					a[i][1] = _mm512_fmadd_ps(p, v1, a[i][1]);
					a[i][2] = _mm512_fmadd_ps(p, v2, a[i][2]);
					a[i][3] = _mm512_fmadd_ps(p, v3, a[i][3]);
				}
			}
		} else {
			for (int64_t j = 0; j < nk; j++) {
				const float *vp = V + j * DV + c;
				for (int i = 0; i < RO; i++) {
					const __m512 p = _mm512_set1_ps(P[i * lds + j]);
					for (int u = 0; u < nv; u++) {
						a[i][u] = _mm512_fmadd_ps(p, _mm512_load_ps(vp + 16 * u), a[i][u]);
					}
				}
			}
		}
		for (int i = 0; i < RO; i++) {
			for (int u = 0; u < nv; u++) {
				_mm512_store_ps(O + i * DV + c + 16 * u, a[i][u]);
			}
		}
	}
}

static inline void f16_to_f32_row(const uint16_t *src, float *dst, int64_t n) {
	for (int64_t d = 0; d < n; d += 16) {
		_mm512_store_ps(dst + d, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + d))));
	}
}

static void fattn(const struct ggml_compute_params *params, struct ggml_tensor *dst) {
	const struct ggml_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2];
	const int64_t DK = k->ne[0], DV = v->ne[0], NKV = k->ne[1];
	const int64_t NQ = q->ne[1], NH = q->ne[2], NB = q->ne[3];
	const int64_t rk2 = NH / k->ne[2], rk3 = NB / k->ne[3], rv2 = NH / v->ne[2], rv3 = NB / v->ne[3];
	float scale;
	memcpy(&scale, (const float *)dst->op_params + 0, sizeof(float));

	const int64_t nkvp = (NKV + 31) / 32 * 32; // keys padded to the micro-kernel's 32
	const int64_t kb = nkvp < KB ? nkvp : KB;  // keys per block
	// Scratch: Kt [DK][nkvp], V [NKV][DV], Q [QB][DK], S [QB][kb], O [QB][DV], m and l [QB].
	const size_t need = (size_t)(DK * nkvp + NKV * DV + QB * DK + QB * kb + QB * DV + 2 * QB) + 64;
	scratch *s = get_scratch(need);
	if (s == NULL) {
		abort(); // out of memory: ggml aborts alike
	}
	// The copies are reused within a call only: the next node's (or the
	// next graph's) K and V may sit at the same addresses with new values.
	s->kv_k = s->kv_v = NULL;
	float *Kt = s->buf;
	float *Vf = Kt + DK * nkvp;
	float *Qs = Vf + NKV * DV;
	float *S = Qs + QB * DK;
	float *O = S + QB * kb;
	float *mrow = O + QB * DV;
	float *lrow = mrow + QB;

	const int64_t nqb = (NQ + QB - 1) / QB;
	const int64_t ntask = NB * NH * nqb;
	const int ith = params->ith, nth = params->nth;
	if (ith == 0) {
		ggml_threadpool_chunk_set(params->threadpool, nth);
	}
	ggml_barrier(params->threadpool);

	for (int64_t t = ith; t < ntask; t = ggml_threadpool_chunk_add(params->threadpool, 1)) {
		const int64_t iq3 = t / (NH * nqb), iq2 = (t / nqb) % NH, q0 = (t % nqb) * QB;
		const int64_t nq = NQ - q0 < QB ? NQ - q0 : QB;
		const int64_t nqp = (nq + RQ - 1) / RQ * RQ;
		const char *kh = (const char *)k->data + (iq2 / rk2) * k->nb[2] + (iq3 / rk3) * k->nb[3];
		const char *vh = (const char *)v->data + (iq2 / rv2) * v->nb[2] + (iq3 / rv3) * v->nb[3];

		// F32 copies of this head's K (transposed: keys along rows) and V.
		if (s->kv_k != kh || s->kv_v != vh) {
			float row[DMAX] __attribute__((aligned(64)));
			for (int64_t j = 0; j < NKV; j++) {
				f16_to_f32_row((const uint16_t *)(kh + j * k->nb[1]), row, DK);
				for (int64_t d = 0; d < DK; d++) {
					Kt[d * nkvp + j] = row[d];
				}
				f16_to_f32_row((const uint16_t *)(vh + j * v->nb[1]), Vf + j * DV, DV);
			}
			for (int64_t d = 0; d < DK; d++) {
				for (int64_t j = NKV; j < nkvp; j++) {
					Kt[d * nkvp + j] = 0.0f;
				}
			}
			s->kv_k = kh;
			s->kv_v = vh;
		}

		// Q rows scaled (padding rows zero).
		const __m512 vscale = _mm512_set1_ps(scale);
		for (int64_t i = 0; i < nqp; i++) {
			float *qd = Qs + i * DK;
			if (i < nq) {
				const float *qs = (const float *)((const char *)q->data + (q0 + i) * q->nb[1] + iq2 * q->nb[2] + iq3 * q->nb[3]);
				for (int64_t d = 0; d < DK; d += 16) {
					_mm512_store_ps(qd + d, _mm512_mul_ps(_mm512_loadu_ps(qs + d), vscale));
				}
			} else {
				memset(qd, 0, DK * sizeof(float));
			}
			memset(O + i * DV, 0, DV * sizeof(float));
			mrow[i] = -INFINITY;
			lrow[i] = 0.0f;
		}

		for (int64_t j0 = 0; j0 < NKV; j0 += kb) {
			const int64_t nk = NKV - j0 < kb ? NKV - j0 : kb; // real keys
			const int64_t nkp = (nk + 31) / 32 * 32;          // computed keys
			for (int64_t i = 0; i < nqp; i += RQ) {
				qk_tile(Qs + i * DK, DK, Kt + j0, nkvp, nkp, S + i * kb, kb);
			}
			// Online softmax over this block, row by row.
			for (int64_t i = 0; i < nqp; i++) {
				float *sr = S + i * kb;
				__m512 mx = _mm512_set1_ps(-INFINITY);
				int64_t j = 0;
				for (; j + 16 <= nk; j += 16) {
					mx = _mm512_max_ps(mx, _mm512_load_ps(sr + j));
				}
				const __mmask16 tail = (__mmask16)((1u << (nk - j)) - 1);
				if (j < nk) {
					mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_load_ps(sr + j));
				}
				const float bmax = _mm512_reduce_max_ps(mx);
				const float mnew = bmax > mrow[i] ? bmax : mrow[i];
				const float corr = mrow[i] == -INFINITY ? 0.0f : expf(mrow[i] - mnew);
				mrow[i] = mnew;
				const __m512 vm = _mm512_set1_ps(mnew);
				__m512 sum = _mm512_setzero_ps();
				for (j = 0; j + 16 <= nk; j += 16) {
					const __m512 p = exp_neg(_mm512_sub_ps(_mm512_load_ps(sr + j), vm));
					_mm512_store_ps(sr + j, p);
					sum = _mm512_add_ps(sum, p);
				}
				if (j < nk) {
					const __m512 p = _mm512_maskz_mov_ps(tail, exp_neg(_mm512_sub_ps(_mm512_load_ps(sr + j), vm)));
					_mm512_store_ps(sr + j, p);
					sum = _mm512_add_ps(sum, p);
					j += 16;
				}
				for (; j < nkp; j += 16) {
					_mm512_store_ps(sr + j, _mm512_setzero_ps());
				}
				lrow[i] = lrow[i] * corr + _mm512_reduce_add_ps(sum);
				if (corr != 1.0f) {
					const __m512 vc = _mm512_set1_ps(corr);
					float *orow = O + i * DV;
					for (int64_t d = 0; d < DV; d += 16) {
						_mm512_store_ps(orow + d, _mm512_mul_ps(_mm512_load_ps(orow + d), vc));
					}
				}
			}
			for (int64_t i = 0; i < nqp; i += RO) {
				pv_tile(S + i * kb, kb, Vf + j0 * DV, DV, nk, O + i * DV);
			}
		}

		// O / l into dst, laid out [DV, heads, queries, batch] as ggml's kernel writes it.
		for (int64_t i = 0; i < nq; i++) {
			const float inv = lrow[i] == 0.0f ? 0.0f : 1.0f / lrow[i];
			const __m512 vi = _mm512_set1_ps(inv);
			const int64_t i1 = q0 + i;
			float *out = (float *)((char *)dst->data + (iq3 * dst->ne[2] * dst->ne[1] + iq2 + i1 * dst->ne[1]) * dst->nb[1]);
			const float *orow = O + i * DV;
			for (int64_t d = 0; d < DV; d += 16) {
				_mm512_storeu_ps(out + d, _mm512_mul_ps(_mm512_load_ps(orow + d), vi));
			}
		}
	}
}

// vlm_flash_attn_ext_avx512 is the AVX-512 target of ggml's
// ggml_compute_forward_flash_attn_ext (internal/ccgen's dispatch).
// VLM_FLASH_ATTN=ggml (or vlm_fattn_set_ggml) leaves every case to
// ggml's kernel, to compare.
static _Atomic int use_ggml;

__attribute__((constructor)) static void vlm_fattn_env(void) {
	const char *e = getenv("VLM_FLASH_ATTN");
	use_ggml = e != NULL && strcmp(e, "ggml") == 0;
}

// taken counts the calls this kernel computed (per thread, per node).
static _Atomic uint64_t taken;

void vlm_fattn_set_ggml(int on) { use_ggml = on != 0; }

uint64_t vlm_fattn_taken(void) { return taken; }

int vlm_fattn_get_ggml(void) { return use_ggml; }

void vlm_flash_attn_ext_avx512(const struct ggml_compute_params *params, struct ggml_tensor *dst) {
	if (use_ggml || !vlm_fattn_takes(dst)) {
		ggml_compute_forward_flash_attn_ext__vlm_avx512(params, dst);
		return;
	}
	if (params->ith == 0) {
		taken++;
	}
	fattn(params, dst);
}
