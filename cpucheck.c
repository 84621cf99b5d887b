//go:build cgo && amd64 && !darwin

// A program built with vlm stops at start, with a message that says why and
// what to do, on an x86-64 CPU that lacks an instruction set extension ggml
// was compiled for, instead of dying with SIGILL in the middle of a kernel
// (ggml's kernels, and the compiler's own code in every C/C++ file, use them
// without asking).
//
// The check runs as a constructor of priority 101: before C++ static
// initialisers (priority 65535, which may already use AVX2) and before Go's
// runtime starts. It is compiled for plain x86-64, whatever -march the rest
// of the package gets (VLM_MARCH builds pass theirs in CGO_CFLAGS).

#include <string.h>
#include <unistd.h>

// What the build requires. The default build (cpucheck_default.go defines
// VLM_TARGET_X86_64_V3) compiles ggml for x86-64-v3; a VLM_MARCH build
// compiles this file with the same -march as ggml, so the compiler's
// predefined macros name what that target uses.
#if defined(VLM_TARGET_X86_64_V3)
#define VLM_NEEDS_AVX 1
#define VLM_NEEDS_AVX2 1
#define VLM_NEEDS_FMA 1
#define VLM_NEEDS_F16C 1
#define VLM_NEEDS_BMI2 1
#define VLM_TARGET_NAME "vlm's default target, x86-64-v3"
#else
#define VLM_TARGET_NAME "the -march of this build (VLM_MARCH or CGO_CFLAGS)"
#if defined(__AVX__)
#define VLM_NEEDS_AVX 1
#endif
#if defined(__AVX2__)
#define VLM_NEEDS_AVX2 1
#endif
#if defined(__FMA__)
#define VLM_NEEDS_FMA 1
#endif
#if defined(__F16C__)
#define VLM_NEEDS_F16C 1
#endif
#if defined(__BMI2__)
#define VLM_NEEDS_BMI2 1
#endif
#if defined(__AVX512F__)
#define VLM_NEEDS_AVX512F 1
#endif
#if defined(__AVX512BW__)
#define VLM_NEEDS_AVX512BW 1
#endif
#if defined(__AVX512VL__)
#define VLM_NEEDS_AVX512VL 1
#endif
#if defined(__AVX512DQ__)
#define VLM_NEEDS_AVX512DQ 1
#endif
#if defined(__AVX512VNNI__)
#define VLM_NEEDS_AVX512VNNI 1
#endif
#if defined(__AVX512VBMI__)
#define VLM_NEEDS_AVX512VBMI 1
#endif
#if defined(__AVX512BF16__)
#define VLM_NEEDS_AVX512BF16 1
#endif
#if defined(__AVXVNNI__)
#define VLM_NEEDS_AVXVNNI 1
#endif
#endif

#define VLM_PUTS(s) do { const char *s_ = (s); ssize_t r_ = write(2, s_, strlen(s_)); (void)r_; } while (0)

__attribute__((constructor(101), target("arch=x86-64")))
static void vlm_cpu_check(void) {
	const char *missing[16];
	int n = 0;
	__builtin_cpu_init();
#define VLM_CHECK(name) if (!__builtin_cpu_supports(name)) missing[n++] = name
#ifdef VLM_NEEDS_AVX
	VLM_CHECK("avx");
#endif
#ifdef VLM_NEEDS_AVX2
	VLM_CHECK("avx2");
#endif
#ifdef VLM_NEEDS_FMA
	VLM_CHECK("fma");
#endif
#ifdef VLM_NEEDS_F16C
	VLM_CHECK("f16c");
#endif
#ifdef VLM_NEEDS_BMI2
	VLM_CHECK("bmi2");
#endif
#ifdef VLM_NEEDS_AVX512F
	VLM_CHECK("avx512f");
#endif
#ifdef VLM_NEEDS_AVX512BW
	VLM_CHECK("avx512bw");
#endif
#ifdef VLM_NEEDS_AVX512VL
	VLM_CHECK("avx512vl");
#endif
#ifdef VLM_NEEDS_AVX512DQ
	VLM_CHECK("avx512dq");
#endif
#ifdef VLM_NEEDS_AVX512VNNI
	VLM_CHECK("avx512vnni");
#endif
#ifdef VLM_NEEDS_AVX512VBMI
	VLM_CHECK("avx512vbmi");
#endif
#ifdef VLM_NEEDS_AVX512BF16
	VLM_CHECK("avx512bf16");
#endif
#ifdef VLM_NEEDS_AVXVNNI
	VLM_CHECK("avxvnni");
#endif
#undef VLM_CHECK
	if (n == 0) {
		return;
	}
	VLM_PUTS("vlm: this CPU lacks ");
	for (int i = 0; i < n; i++) {
		VLM_PUTS(i ? ", " : "");
		VLM_PUTS(missing[i]);
	}
	VLM_PUTS(", which this program's llama.cpp (ggml) was compiled for (" VLM_TARGET_NAME
		"): it would stop with an illegal instruction.\n"
		"vlm: rebuild for this CPU with VLM_MARCH: in a checkout of vlm, VLM_MARCH=native ./build.sh ...; "
		"in your module, eval \"$(go run github.com/vlm-go/vlm/cmd/vlm-env)\" (or VLM_MARCH=x86-64-v2 for any "
		"64-bit x86 CPU of the last 15 years) before go build. VLM_PORTABLE=1 names the default target, "
		"x86-64-v3, which this CPU cannot run. See \"CPU target\" in vlm's README.\n");
	_exit(1);
}
