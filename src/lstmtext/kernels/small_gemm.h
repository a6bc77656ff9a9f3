// Single-threaded AVX-512 float32 GEMM for the per-step products of the LSTM recurrence.
//
// C (M x N, row stride ldc) = [C +] A (M x K) B (K x N, row stride ldb), where A is addressed through two
// strides, A(m, k) = A[m * sam + k * sak], so transposed views (x_t^T, h_{t-1}^T of a thread's batch rows)
// are read in place. Called inside the thread's own time loop: no threading, no allocation, no weight
// re-layout per call, which is where oneDNN's per-call overhead went on these 128-row products.
//
// Register blocking: MR = 6 rows x NV <= 4 vectors of 16 columns = 24 accumulators; the K x 64 panel of B
// is reused by every row block while it sits in L1/L2. The last vector of a panel is masked.

#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace lstmtext_gemm {

// Written so that GCC keeps the 24 accumulators in registers: flat arrays, precomputed lane masks, fully
// unrolled loops and no conditional loads inside the k loop (a 2-D array with per-vector conditionals was
// spilled to the stack on every iteration, at a third of the speed).
template <int MR, int NV>
inline void micro(int64_t K, const float* A, int64_t sam, int64_t sak, const float* B, int64_t ldb, float* C,
                  int64_t ldc, __mmask16 last, bool accumulate) {
  __mmask16 mk[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) mk[v] = v == NV - 1 ? last : static_cast<__mmask16>(0xFFFF);
  __m512 c[MR * NV];
#pragma GCC unroll 24
  for (int i = 0; i < MR * NV; ++i) c[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* bk = B + k * ldb;
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = _mm512_maskz_loadu_ps(mk[v], bk + 16 * v);
    const float* ak = A + k * sak;
#pragma GCC unroll 6
    for (int m = 0; m < MR; ++m) {
      const __m512 a = _mm512_set1_ps(ak[m * sam]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[m * NV + v] = _mm512_fmadd_ps(a, b[v], c[m * NV + v]);
    }
  }
#pragma GCC unroll 6
  for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* p = C + m * ldc + 16 * v;
      __m512 r = c[m * NV + v];
      if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mk[v], p));
      _mm512_mask_storeu_ps(p, mk[v], r);
    }
  }
}

template <int NV>
inline void row_blocks(int64_t M, int64_t K, const float* A, int64_t sam, int64_t sak, const float* B, int64_t ldb,
                       float* C, int64_t ldc, __mmask16 last, bool acc) {
  int64_t m = 0;
  for (; m + 6 <= M; m += 6) micro<6, NV>(K, A + m * sam, sam, sak, B, ldb, C + m * ldc, ldc, last, acc);
  const float* Am = A + m * sam;
  float* Cm = C + m * ldc;
  switch (M - m) {
    case 5: micro<5, NV>(K, Am, sam, sak, B, ldb, Cm, ldc, last, acc); break;
    case 4: micro<4, NV>(K, Am, sam, sak, B, ldb, Cm, ldc, last, acc); break;
    case 3: micro<3, NV>(K, Am, sam, sak, B, ldb, Cm, ldc, last, acc); break;
    case 2: micro<2, NV>(K, Am, sam, sak, B, ldb, Cm, ldc, last, acc); break;
    case 1: micro<1, NV>(K, Am, sam, sak, B, ldb, Cm, ldc, last, acc); break;
    default: break;
  }
}

// C = [C +] A B, see above. M, N, K >= 0.
inline void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t sam, int64_t sak, const float* B,
                 int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  for (int64_t n0 = 0; n0 < N; n0 += 64) {
    const int64_t cols = std::min<int64_t>(64, N - n0);
    const int nv = static_cast<int>((cols + 15) / 16);
    const int rem = static_cast<int>(cols - 16 * (nv - 1));
    const __mmask16 last = static_cast<__mmask16>((1u << rem) - 1u);
    const float* Bn = B + n0;
    float* Cn = C + n0;
    switch (nv) {
      case 4: row_blocks<4>(M, K, A, sam, sak, Bn, ldb, Cn, ldc, last, accumulate); break;
      case 3: row_blocks<3>(M, K, A, sam, sak, Bn, ldb, Cn, ldc, last, accumulate); break;
      case 2: row_blocks<2>(M, K, A, sam, sak, Bn, ldb, Cn, ldc, last, accumulate); break;
      default: row_blocks<1>(M, K, A, sam, sak, Bn, ldb, Cn, ldc, last, accumulate); break;
    }
  }
}

}  // namespace lstmtext_gemm
