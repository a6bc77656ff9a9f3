// Fixed-width float32 SIMD for the CPU kernels: AVX-512F (16 lanes, namespace lstmtext_simd512) and AVX2 +
// FMA (8 lanes, lstmtext_simd256), each compiled where the build machine has it (the kernels are built with
// -march=native, so an AVX-512 build has both). lstmtext_simd names the widest one; LSTMTEXT_SIMD says its
// width (512 or 256) and stays undefined without either instruction set, where the kernels use their plain
// C++ loops. The vector code of lstm_cpu.cpp and small_gemm.h is written once against these few operations
// and the activations of vector_math.h, which is compiled into each namespace.
//
// A Mask selects the first n lanes of a vector: loads through it read zeros elsewhere and never touch
// memory past the n-th float, stores through it write only those lanes. AVX2 has no mask registers, so
// there a Mask is a vector of all-ones / all-zeros 32-bit lanes (vmaskmovps).

#pragma once

#include <immintrin.h>

#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#define LSTMTEXT_SIMD256 1
#endif
#if defined(__AVX512F__)
#define LSTMTEXT_SIMD 512
#elif defined(LSTMTEXT_SIMD256)
#define LSTMTEXT_SIMD 256
#endif

// Forced inline: as calls (GCC's choice for tanh_v) they cost a third of a small-u step in moves.
#define LSTMTEXT_INLINE inline __attribute__((always_inline))

#if LSTMTEXT_SIMD == 512
namespace lstmtext_simd512 {
constexpr int W = 16;
using V = __m512;
using Mask = __mmask16;

inline Mask first_lanes(int64_t n) {
  return n >= W ? static_cast<Mask>(0xFFFF) : (n <= 0 ? static_cast<Mask>(0) : static_cast<Mask>((1u << n) - 1u));
}
inline V set1(float x) { return _mm512_set1_ps(x); }
inline V zero() { return _mm512_setzero_ps(); }
inline V loadu(const float* p) { return _mm512_loadu_ps(p); }
inline void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
inline V load_first(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
inline void store_first(float* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }
inline V add(V a, V b) { return _mm512_add_ps(a, b); }
inline V sub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V div(V a, V b) { return _mm512_div_ps(a, b); }
// 1 / x to ~1 ulp: the 14-bit estimate and one Newton step, a third of a division's cost on AMD Zen 4.
inline V recip(V x) {
  const V r = _mm512_rcp14_ps(x);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(x, r, _mm512_set1_ps(2.0f)));
}
inline V min(V a, V b) { return _mm512_min_ps(a, b); }
inline V max(V a, V b) { return _mm512_max_ps(a, b); }
inline V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }    // a * b + c
inline V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a * b
inline V bit_and(V a, V b) { return _mm512_and_ps(a, b); }
inline V bit_or(V a, V b) { return _mm512_or_ps(a, b); }
inline V bit_andnot(V a, V b) { return _mm512_andnot_ps(a, b); }  // ~a & b
inline V floor(V x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
// y * 2^n for integral n with 2^n a normal float.
inline V ldexp(V y, V n) { return _mm512_scalef_ps(y, n); }
// Lane-wise a < b ? if_lt : otherwise.
inline V select_lt(V a, V b, V if_lt, V otherwise) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), otherwise, if_lt);
}

#include "simd_lanes.h"
#include "vector_math.h"
}  // namespace lstmtext_simd512
#endif

#ifdef LSTMTEXT_SIMD256
namespace lstmtext_simd256 {
constexpr int W = 8;
using V = __m256;
using Mask = __m256i;

inline Mask first_lanes(int64_t n) {
  const int k = static_cast<int>(n < 0 ? 0 : (n > W ? W : n));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline V set1(float x) { return _mm256_set1_ps(x); }
inline V zero() { return _mm256_setzero_ps(); }
inline V loadu(const float* p) { return _mm256_loadu_ps(p); }
inline void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
inline V load_first(Mask m, const float* p) { return _mm256_maskload_ps(p, m); }
inline void store_first(float* p, Mask m, V v) { _mm256_maskstore_ps(p, m, v); }
inline V add(V a, V b) { return _mm256_add_ps(a, b); }
inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V div(V a, V b) { return _mm256_div_ps(a, b); }
// 1 / x to ~2 ulp: the 12-bit estimate and one Newton step.
inline V recip(V x) {
  const V r = _mm256_rcp_ps(x);
  return _mm256_mul_ps(r, _mm256_fnmadd_ps(x, r, _mm256_set1_ps(2.0f)));
}
inline V min(V a, V b) { return _mm256_min_ps(a, b); }
inline V max(V a, V b) { return _mm256_max_ps(a, b); }
inline V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
inline V bit_and(V a, V b) { return _mm256_and_ps(a, b); }
inline V bit_or(V a, V b) { return _mm256_or_ps(a, b); }
inline V bit_andnot(V a, V b) { return _mm256_andnot_ps(a, b); }
inline V floor(V x) { return _mm256_floor_ps(x); }
inline V ldexp(V y, V n) {
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}
inline V select_lt(V a, V b, V if_lt, V otherwise) {
  return _mm256_blendv_ps(otherwise, if_lt, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
}

#include "simd_lanes.h"
#include "vector_math.h"
}  // namespace lstmtext_simd256
#endif

#if LSTMTEXT_SIMD == 512
namespace lstmtext_simd = lstmtext_simd512;
#elif LSTMTEXT_SIMD == 256
namespace lstmtext_simd = lstmtext_simd256;
#endif
