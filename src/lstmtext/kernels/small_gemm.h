// Single-threaded float32 GEMM for the per-step products of the LSTM recurrence (AVX-512 or AVX2, simd.h).
//
// C (M x N, row stride ldc) = [C +] A (M x K) B (K x N, row stride ldb), where A is addressed through two
// strides, A(m, k) = A[m * sam + k * sak], so transposed views (x_t^T, h_{t-1}^T of a thread's batch rows)
// are read in place. Called inside the thread's own time loop: no threading, no allocation, no weight
// re-layout per call, which is where oneDNN's per-call overhead went on these 128-row products.
//
// Register blocking: MR = 6 rows x NV vectors of W columns (AVX-512: NV <= 4, 24 of 32 registers; AVX2:
// NV <= 2, 12 of 16); the K x (NV * W) panel of B is reused by every row block while it sits in L1/L2. The
// last vector of a panel is masked.

#pragma once

#include "simd.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#ifdef LSTMTEXT_SIMD
namespace lstmtext_gemm {

using namespace lstmtext_simd;

// Vectors per panel: as many accumulators as the register file holds with room for B and the broadcast.
constexpr int kPanelVectors = W == 16 ? 4 : 2;

// C (MR rows x NV vectors, row stride ldc) = [C +] the accumulators c; the last vector through `last`.
template <int MR, int NV>
LSTMTEXT_INLINE void store_tile(const V* c, float* C, int64_t ldc, Mask last, bool accumulate) {
#pragma GCC unroll 6
  for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* p = C + m * ldc + W * v;
      V r = c[m * NV + v];
      if (v == NV - 1) {
        if (accumulate) r = add(r, load_first(last, p));
        store_first(p, last, r);
      } else {
        if (accumulate) r = add(r, loadu(p));
        storeu(p, r);
      }
    }
  }
}

// tile.run<MR>(m) over the rows of an M-row panel: blocks of 6 rows, then the remaining 1-5.
template <class Tile>
LSTMTEXT_INLINE void for_row_blocks(int64_t M, const Tile& tile) {
  int64_t m = 0;
  for (; m + 6 <= M; m += 6) tile.template run<6>(m);
  switch (M - m) {
    case 5: tile.template run<5>(m); break;
    case 4: tile.template run<4>(m); break;
    case 3: tile.template run<3>(m); break;
    case 2: tile.template run<2>(m); break;
    case 1: tile.template run<1>(m); break;
    default: break;
  }
}

// fn(std::integral_constant<int, NV>) for a panel of nv vectors, 1 <= nv <= kPanelVectors.
template <class Fn>
LSTMTEXT_INLINE void with_panel_vectors(int nv, const Fn& fn) {
  switch (nv) {
    case 4: if constexpr (kPanelVectors >= 4) fn(std::integral_constant<int, 4>{}); break;
    case 3: if constexpr (kPanelVectors >= 3) fn(std::integral_constant<int, 3>{}); break;
    case 2: fn(std::integral_constant<int, 2>{}); break;
    default: fn(std::integral_constant<int, 1>{}); break;
  }
}

// The float32 operands of micro: A(m, k) = A[m * sam + k * sak], B row-major with row stride ldb.
struct FloatOps {
  using BV = V;
  const float* A;
  int64_t sam, sak;
  const float* B;
  int64_t ldb;
  template <int NV>
  LSTMTEXT_INLINE void load_b(int64_t k, V (&b)[NV], Mask last) const {
    const float* bk = B + k * ldb;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = v == NV - 1 ? load_first(last, bk + W * v) : loadu(bk + W * v);
  }
  LSTMTEXT_INLINE V a(int64_t m, int64_t k) const { return set1(A[m * sam + k * sak]); }
  LSTMTEXT_INLINE FloatOps from_row(int64_t m) const { return {A + m * sam, sam, sak, B, ldb}; }
  static LSTMTEXT_INLINE V madd(V c, V a, V b) { return fmadd(a, b, c); }
};

// C (MR x NV vectors) = [C +] sum over k of A(m, k) B(k, :), the operands read through ops (FloatOps, or
// PairOps for bfloat16 pairs, where k counts pairs). Written so that GCC keeps the accumulators in
// registers: flat arrays, fully unrolled loops and no conditional loads inside the k loop (a 2-D array with
// per-vector conditionals was spilled to the stack on every iteration, at a third of the speed); only the
// panel's last vector is loaded through the mask.
template <int MR, int NV, class Ops>
inline void micro(int64_t K, const Ops& ops, float* C, int64_t ldc, Mask last, bool accumulate) {
  V c[MR * NV];
#pragma GCC unroll 24
  for (int i = 0; i < MR * NV; ++i) c[i] = zero();
  for (int64_t k = 0; k < K; ++k) {
    typename Ops::BV b[NV];
    ops.template load_b<NV>(k, b, last);
#pragma GCC unroll 6
    for (int m = 0; m < MR; ++m) {
      const auto a = ops.a(m, k);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[m * NV + v] = Ops::madd(c[m * NV + v], a, b[v]);
    }
  }
  store_tile<MR, NV>(c, C, ldc, last, accumulate);
}

// micro<MR, NV> on the rows from m of A and C, K deep (pairs for PairOps).
template <int NV, class Ops>
struct Tile {
  int64_t K;
  Ops ops;
  float* C;
  int64_t ldc;
  Mask last;
  bool acc;
  template <int MR>
  LSTMTEXT_INLINE void run(int64_t m) const { micro<MR, NV>(K, ops.from_row(m), C + m * ldc, ldc, last, acc); }
};

// C = [C +] A B, see above. M, N, K >= 0.
inline void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t sam, int64_t sak, const float* B,
                 int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  constexpr int64_t panel = int64_t{W} * kPanelVectors;
  for (int64_t n0 = 0; n0 < N; n0 += panel) {
    const int64_t cols = std::min<int64_t>(panel, N - n0);
    const int nv = static_cast<int>((cols + W - 1) / W);
    const Mask last = first_lanes(cols - int64_t{W} * (nv - 1));
    const float* Bn = B + n0;
    float* Cn = C + n0;
    with_panel_vectors(nv, [&](auto v) {
      for_row_blocks(M, Tile<decltype(v)::value, FloatOps>{K, {A, sam, sak, Bn, ldb}, Cn, ldc, last, accumulate});
    });
  }
}

// ---- packed B: a weight matrix used at every step of a sequence -----------------------------------------
//
// B (K x N, row stride ldb) re-laid once per call as column panels of P = W * kPanelVectors floats: panel p
// holds columns [p*P, p*P + P) of every row k at Bp[(p*K + k)*P], zero padded past N. The micro-kernel then
// streams each panel contiguously instead of one 256-byte slice per 4 KB page of a wide row-major matrix
// (which cost a fifth of the large-u recurrent GEMMs in TLB and prefetch misses), and the K loop is cut
// into blocks so that a panel's block stays in L2 while every row block of A passes over it.

constexpr int64_t kPanel = int64_t{W} * kPanelVectors;
constexpr int64_t kDepthBlock = W == 16 ? 512 : 256;

inline std::vector<float> pack_panels(const float* B, int64_t K, int64_t N, int64_t ldb) {
  const int64_t panels = (N + kPanel - 1) / kPanel;
  std::vector<float> dst(panels * K * kPanel, 0.0f);
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t cols = std::min<int64_t>(kPanel, N - p * kPanel);
    for (int64_t k = 0; k < K; ++k) std::copy_n(B + k * ldb + p * kPanel, cols, &dst[(p * K + k) * kPanel]);
  }
  return dst;
}

// C (M x N) = [C +] A (M x K) Bp, with Bp from pack_panels(B, K, N, .).
inline void gemm_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t sam, int64_t sak, const float* Bp,
                        float* C, int64_t ldc, bool accumulate) {
  const int64_t panels = (N + kPanel - 1) / kPanel;
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t cols = std::min<int64_t>(kPanel, N - p * kPanel);
    const int nv = static_cast<int>((cols + W - 1) / W);
    const Mask last = first_lanes(cols - int64_t{W} * (nv - 1));
    for (int64_t k0 = 0; k0 < K; k0 += kDepthBlock) {
      const int64_t kc = std::min(kDepthBlock, K - k0);
      const float* Ak = A + k0 * sak;
      const float* Bk = Bp + (p * K + k0) * kPanel;
      float* Cp = C + p * kPanel;
      const bool acc = accumulate || k0 > 0;
      with_panel_vectors(nv, [&](auto v) {
        for_row_blocks(M, Tile<decltype(v)::value, FloatOps>{kc, {Ak, sam, sak, Bk, kPanel}, Cp, ldc, last, acc});
      });
    }
  }
}

// ---- bfloat16 products (bfloat16_matmuls(), AVX512_BF16) ------------------------------------------------
//
// vdpbf16ps multiplies pairs of bfloat16 values and adds both products to a float32 lane: twice the
// multiply-adds of a float32 FMA per instruction. B is packed once per call as column panels (as above) of
// k-pairs, Bp[(p*Kp + kp)*kPanel + n] holding B[2kp][n] in its low and B[2kp+1][n] in its high half (a zero
// past K); A's rows are rounded to the same pairs (to_bf16_pairs) once per step, and C stays float32.
#if defined(__AVX512BF16__) && LSTMTEXT_SIMD == 512
#define LSTMTEXT_BF16 1

// float -> bfloat16 bits, rounded to nearest even (vcvtne2ps2bf16's rounding; no NaNs reach it here).
inline uint32_t bf16_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
}

inline std::vector<uint32_t> pack_panels_bf16(const float* B, int64_t K, int64_t N, int64_t ldb) {
  const int64_t panels = (N + kPanel - 1) / kPanel, Kp = (K + 1) / 2;
  std::vector<uint32_t> dst(panels * Kp * kPanel, 0u);
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t cols = std::min<int64_t>(kPanel, N - p * kPanel);
    for (int64_t kp = 0; kp < Kp; ++kp) {
      const float* lo = B + 2 * kp * ldb + p * kPanel;
      const float* hi = 2 * kp + 1 < K ? lo + ldb : nullptr;
      uint32_t* d = &dst[(p * Kp + kp) * kPanel];
      for (int64_t n = 0; n < cols; ++n) d[n] = bf16_bits(lo[n]) | (hi != nullptr ? bf16_bits(hi[n]) << 16 : 0u);
    }
  }
  return dst;
}

// dst (M x Kp pairs, row stride Kp) = A (M x K floats, row stride lda, contiguous in k) rounded to bfloat16.
inline void to_bf16_pairs(int64_t M, int64_t K, const float* A, int64_t lda, uint32_t* dst) {
  const int64_t Kp = (K + 1) / 2;
  for (int64_t m = 0; m < M; ++m) {
    const float* a = A + m * lda;
    uint32_t* d = dst + m * Kp;
    for (int64_t k = 0; k < K; k += 32) {
      const V lo = load_first(first_lanes(K - k), a + k);
      const V hi = load_first(first_lanes(K - k - 16), a + k + 16);
      const __m512i pairs = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
      _mm512_mask_storeu_epi32(d + k / 2, first_lanes(Kp - k / 2), pairs);
    }
  }
}

// The bfloat16-pair operands of micro: A(m, kp) = A[m * lda + kp], B a column panel of pairs (kPanel wide).
struct PairOps {
  using BV = __m512bh;
  const uint32_t* A;
  int64_t lda;
  const uint32_t* B;
  template <int NV>
  LSTMTEXT_INLINE void load_b(int64_t kp, BV (&b)[NV], Mask) const {
    const uint32_t* bk = B + kp * kPanel;  // zero past N: no mask needed
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_loadu_si512(bk + W * v);
  }
  LSTMTEXT_INLINE __m512bh a(int64_t m, int64_t kp) const {
    return (__m512bh)_mm512_set1_epi32(static_cast<int>(A[m * lda + kp]));
  }
  LSTMTEXT_INLINE PairOps from_row(int64_t m) const { return {A + m * lda, lda, B}; }
  static LSTMTEXT_INLINE V madd(V c, __m512bh a, __m512bh b) { return _mm512_dpbf16_ps(c, a, b); }
};

// C (M x N) = [C +] A Bp: A as bfloat16 pairs (M x Kp, row stride lda) from to_bf16_pairs, Bp from
// pack_panels_bf16 of a K x N matrix with (K + 1) / 2 == Kp.
inline void gemm_packed_bf16(int64_t M, int64_t N, int64_t Kp, const uint32_t* A, int64_t lda, const uint32_t* Bp,
                             float* C, int64_t ldc, bool accumulate) {
  const int64_t panels = (N + kPanel - 1) / kPanel;
  constexpr int64_t kPairBlock = kDepthBlock / 2;
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t cols = std::min<int64_t>(kPanel, N - p * kPanel);
    const int nv = static_cast<int>((cols + W - 1) / W);
    const Mask last = first_lanes(cols - int64_t{W} * (nv - 1));
    for (int64_t k0 = 0; k0 < Kp; k0 += kPairBlock) {
      const int64_t kc = std::min(kPairBlock, Kp - k0);
      const uint32_t* Ak = A + k0;
      const uint32_t* Bk = Bp + (p * Kp + k0) * kPanel;
      float* Cp = C + p * kPanel;
      const bool acc = accumulate || k0 > 0;
      with_panel_vectors(nv, [&](auto v) {
        for_row_blocks(M, Tile<decltype(v)::value, PairOps>{kc, {Ak, lda, Bk}, Cp, ldc, last, acc});
      });
    }
  }
}
#endif  // __AVX512BF16__

}  // namespace lstmtext_gemm
#endif  // LSTMTEXT_SIMD
