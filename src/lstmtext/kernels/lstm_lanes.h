// kLanes: the small-u LSTM recurrence with eight batch rows in the eight lanes of an AVX2 vector.
//
// Standalone: it needs only the argument structs (lstm_args.h) and the 8-lane vectors and activations of
// simd.h, which exist on every CPU with AVX2 + FMA, AVX-512 ones included (there a 256-bit operation has the
// same float throughput per cycle as half a 512-bit one on double-pumped cores such as AMD Zen 4). kVector keeps one
// row's gates in the lanes, so a gate of u = 10 units takes two 8-lane vectors of which 6 lanes are padding:
// ~40 % of its arithmetic is wasted, and its recurrent product needs a broadcast per weight. Here lane r of
// every vector is batch row b + r: each unit's pre-activation is one vector for 8 rows, so no lane is wasted
// for any u, and the recurrent product is one FMA per weight against a pre-broadcast copy of the recurrent
// kernel. The (B, T, ...) tensors are read and written row-major through 8x8 register transposes; the state
// of the 8 rows stays transposed in vectors for the whole time loop. Masked rows are blended, not branched.
//
// Requires AVX2 + FMA (LSTMTEXT_SIMD256); chosen for small u by lstm_cpu.cpp's resolve_impl (any
// u <= kRowMaxUnits when forced).

#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "lstm_args.h"
#include "simd.h"

#ifdef LSTMTEXT_SIMD256
#define LSTMTEXT_LANES 1

namespace lanes {

using namespace lstmtext_lstm;
using namespace lstmtext_simd256;

constexpr int kL = 8;                       // rows per block = lanes
constexpr int64_t kMaxU = kRowMaxUnits;     // a multiple of 8
constexpr int64_t kMaxG = 4 * kRowMaxUnits;

// Zeros standing in for the rows of a partial last block (never written).
alignas(32) inline const float kZeroRow[kMaxG + kL] = {};

inline void transpose8(V r[8]) {
  const V t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const V t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const V t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const V t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const V s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const V s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const V s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const V s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// dst[j] = column `off + j` of the 8 rows (lane r from rows[r]), for j < n; n <= 8 columns exist.
inline void load_cols(const float* const rows[kL], int64_t off, int64_t n, V dst[8]) {
  if (n >= 8) {
    for (int r = 0; r < kL; ++r) dst[r] = loadu(rows[r] + off);
  } else {
    const Mask m = first_lanes(n);
    for (int r = 0; r < kL; ++r) dst[r] = load_first(m, rows[r] + off);
  }
  transpose8(dst);
}

// All u columns of the 8 rows into col[0 .. u), zeros above u up to the next multiple of 8.
inline void load_rows(const float* const rows[kL], int64_t off, int64_t u, V* col) {
  for (int64_t j0 = 0; j0 < u; j0 += 8) load_cols(rows, off + j0, std::min<int64_t>(8, u - j0), col + j0);
}

// Row r (< nrows) of the 8 rows gets columns [off, off + u) from col[0 .. u).
inline void store_rows(float* const rows[kL], int nrows, int64_t off, int64_t u, const V* col) {
  for (int64_t j0 = 0; j0 < u; j0 += 8) {
    V t[8];
    for (int j = 0; j < 8; ++j) t[j] = col[j0 + j];
    transpose8(t);
    const int64_t n = std::min<int64_t>(8, u - j0);
    if (n == 8) {
      for (int r = 0; r < nrows; ++r) storeu(rows[r] + off + j0, t[r]);
    } else {
      const Mask m = first_lanes(n);
      for (int r = 0; r < nrows; ++r) store_first(rows[r] + off + j0, m, t[r]);
    }
  }
}

// Columns [off, off + n) of rows b .. b + nr - 1 of a row-major tensor (row i at base + i * stride) into
// col[0 .. n); the rows missing from a partial block read as zeros.
inline void load_block(const float* base, int64_t stride, int64_t b, int nr, int64_t off, int64_t n, V* col) {
  const float* rows[kL];
  for (int r = 0; r < kL; ++r) rows[r] = r < nr ? base + (b + r) * stride : kZeroRow;
  load_rows(rows, off, n, col);
}

// The inverse of load_block for the nr existing rows.
inline void store_block(float* base, int64_t stride, int64_t b, int nr, int64_t off, int64_t n, const V* col) {
  float* rows[kL];
  for (int r = 0; r < nr; ++r) rows[r] = base + (b + r) * stride;
  store_rows(rows, nr, off, n, col);
}

inline int64_t padded(int64_t u) { return (u + 7) / 8 * 8; }

// R (u, 4u) -> (u, 4u, 8): R[l, j] broadcast to 8 lanes at [(l*4u + j)*8].
inline std::vector<float> broadcast_recurrent(const float* R, int64_t u) {
  const int64_t G = 4 * u;
  std::vector<float> dst(u * G * kL);
  for (int64_t i = 0; i < u * G; ++i) std::fill_n(&dst[i * kL], kL, R[i]);
  return dst;
}

// R (u, 4u) -> (4u, UP, 8): R[l, g*u + j] broadcast at [((g*u + j)*UP + l)*8], zero padded (the backward's R^T).
inline std::vector<float> broadcast_recurrent_t(const float* R, int64_t u) {
  const int64_t UP = padded(u), G = 4 * u;
  std::vector<float> dst(G * UP * kL, 0.0f);
  for (int64_t jg = 0; jg < G; ++jg)
    for (int64_t l = 0; l < u; ++l) std::fill_n(&dst[(jg * UP + l) * kL], kL, R[l * G + jg]);
  return dst;
}

// Lane r is on when row b + r exists and its step t is real; returns the all-ones/zeros lane vector.
inline V real_lanes(const Common& k, int64_t b, int nr, int64_t t, bool* any) {
  alignas(32) int32_t on[kL];
  *any = false;
  for (int r = 0; r < kL; ++r) {
    const bool real = r < nr && is_real(k, (b + r) * k.T + t);
    on[r] = real ? -1 : 0;
    *any |= real;
  }
  return _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(on)));
}

inline V select(V real, V if_real, V otherwise) { return _mm256_blendv_ps(otherwise, if_real, real); }

// The recurrent dropout multipliers of the block, transposed: drop[g][l] (g < 4 per gate, else g = 0).
inline void load_dropout(const Common& k, int64_t b, int nr, V drop[4][kMaxU]) {
  if (k.mode == DropMode::kNone) return;
  const int gates = k.mode == DropMode::kPerGate ? 4 : 1;
  for (int g = 0; g < gates; ++g) load_block(k.rdm, k.rdm_stride, b, nr, g * k.u, k.u, drop[g]);
}

// N <= 8 consecutive columns j0.. of z = xz + (h * mask) @ R for the 8 rows, activated into act[j0 ..]:
// tanh for the columns of gate c ([tanh_lo, tanh_hi)), sigmoid for the others. Columns run over the packed
// 4u gates, so no lane or column is padding (one chunk may span two gates).
template <int N>
LSTMTEXT_INLINE void fwd_chunk(const float* const in[kL], int64_t j0, const V* h, const float* Rb, int64_t u,
                               int64_t G, int64_t tanh_lo, int64_t tanh_hi, V* act) {
  V z[8];
  load_cols(in, j0, N, z);
  const float* rb = Rb + j0 * kL;
  for (int64_t l = 0; l < u; ++l) {
    const V hv = h[l];
    const float* rl = rb + l * G * kL;
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) z[j] = fmadd(hv, loadu(rl + j * kL), z[j]);
  }
#pragma GCC unroll 8
  for (int j = 0; j < N; ++j) {
    const int64_t col = j0 + j;
    act[col] = col >= tanh_lo && col < tanh_hi ? tanh_v(z[j]) : sigmoid_v(z[j]);
  }
}

inline void fwd_columns(int64_t n, const float* const in[kL], int64_t j0, const V* h, const float* Rb, int64_t u,
                        int64_t G, V* act) {
  const int64_t lo = 2 * u, hi = 3 * u;
  switch (n) {
    case 8: return fwd_chunk<8>(in, j0, h, Rb, u, G, lo, hi, act);
    case 7: return fwd_chunk<7>(in, j0, h, Rb, u, G, lo, hi, act);
    case 6: return fwd_chunk<6>(in, j0, h, Rb, u, G, lo, hi, act);
    case 5: return fwd_chunk<5>(in, j0, h, Rb, u, G, lo, hi, act);
    case 4: return fwd_chunk<4>(in, j0, h, Rb, u, G, lo, hi, act);
    case 3: return fwd_chunk<3>(in, j0, h, Rb, u, G, lo, hi, act);
    case 2: return fwd_chunk<2>(in, j0, h, Rb, u, G, lo, hi, act);
    default: return fwd_chunk<1>(in, j0, h, Rb, u, G, lo, hi, act);
  }
}

// dh_{t-1}[l] for N <= 8 units l0..: sum_g mask_g[l] * sum_j dz_g[j] R[l, g*u + j]; masked rows keep dh.
template <int N>
LSTMTEXT_INLINE void dh_chunk(const Common& k, int64_t l0, const V* dz, const float* RTb, V real,
                              const V drop[4][kMaxU], V* dh) {
  const int64_t u = k.u, G = k.G, UP = padded(u);
  V sum[8];
#pragma GCC unroll 8
  for (int i = 0; i < N; ++i) sum[i] = zero();
  if (k.mode != DropMode::kPerGate) {
    for (int64_t j = 0; j < G; ++j) {
      const V d = dz[j];
      const float* rj = RTb + (j * UP + l0) * kL;
#pragma GCC unroll 8
      for (int i = 0; i < N; ++i) sum[i] = fmadd(d, loadu(rj + i * kL), sum[i]);
    }
  } else {
    for (int g = 0; g < 4; ++g) {
      V part[8];
#pragma GCC unroll 8
      for (int i = 0; i < N; ++i) part[i] = zero();
      for (int64_t j = g * u; j < (g + 1) * u; ++j) {
        const V d = dz[j];
        const float* rj = RTb + (j * UP + l0) * kL;
#pragma GCC unroll 8
        for (int i = 0; i < N; ++i) part[i] = fmadd(d, loadu(rj + i * kL), part[i]);
      }
#pragma GCC unroll 8
      for (int i = 0; i < N; ++i) sum[i] = fmadd(part[i], drop[g][l0 + i], sum[i]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < N; ++i) {
    const V s = k.mode == DropMode::kShared ? mul(sum[i], drop[0][l0 + i]) : sum[i];
    dh[l0 + i] = select(real, s, dh[l0 + i]);
  }
}

inline void dh_units(const Common& k, int64_t l0, const V* dz, const float* RTb, V real, const V drop[4][kMaxU],
                     V* dh) {
  switch (std::min<int64_t>(8, k.u - l0)) {
    case 8: return dh_chunk<8>(k, l0, dz, RTb, real, drop, dh);
    case 7: return dh_chunk<7>(k, l0, dz, RTb, real, drop, dh);
    case 6: return dh_chunk<6>(k, l0, dz, RTb, real, drop, dh);
    case 5: return dh_chunk<5>(k, l0, dz, RTb, real, drop, dh);
    case 4: return dh_chunk<4>(k, l0, dz, RTb, real, drop, dh);
    case 3: return dh_chunk<3>(k, l0, dz, RTb, real, drop, dh);
    case 2: return dh_chunk<2>(k, l0, dz, RTb, real, drop, dh);
    default: return dh_chunk<1>(k, l0, dz, RTb, real, drop, dh);
  }
}

inline void forward(const FwdArgs& a, const float* Rb, int64_t b0, int64_t b1) {
  const Common& k = a.k;
  const int64_t u = k.u, G = k.G, T = k.T, UP = padded(u);
  V hT[kMaxU], cT[kMaxU], oT[kMaxU], act[kMaxG], hm[4][kMaxU], drop[4][kMaxU];
  for (int64_t j = 0; j < kMaxG; ++j) act[j] = zero();
  for (int64_t bb = b0; bb < b1; bb += kL) {
    const int nr = static_cast<int>(std::min<int64_t>(kL, b1 - bb));
    const float* in[kL];
    load_block(a.h, u, bb, nr, 0, u, hT);
    load_block(a.c, u, bb, nr, 0, u, cT);
    for (int64_t l = 0; l < UP; ++l) oT[l] = zero();
    load_dropout(k, bb, nr, drop);
    for (int64_t t = 0; t < T; ++t) {
      bool any;
      const V real = real_lanes(k, bb, nr, t, &any);
      if (a.hprev != nullptr) {
        store_block(a.hprev + t * u, T * u, bb, nr, 0, u, hT);
      }
      if (any) {
        // (h * dropout mask) per gate; none: h itself for every gate.
        const V* hs[4] = {hT, hT, hT, hT};
        if (k.mode == DropMode::kShared) {
          for (int64_t l = 0; l < u; ++l) hm[0][l] = mul(hT[l], drop[0][l]);
          hs[0] = hs[1] = hs[2] = hs[3] = hm[0];
        } else if (k.mode == DropMode::kPerGate) {
          for (int g = 0; g < 4; ++g) {
            for (int64_t l = 0; l < u; ++l) hm[g][l] = mul(hT[l], drop[g][l]);
            hs[g] = hm[g];
          }
        }
        for (int r = 0; r < kL; ++r) in[r] = r < nr ? xz_row(a, (bb + r) * T + t) : kZeroRow;
        if (k.mode != DropMode::kPerGate) {
          for (int64_t j0 = 0; j0 < G; j0 += 8) fwd_columns(std::min<int64_t>(8, G - j0), in, j0, hs[0], Rb, u, G, act);
        } else {  // each gate's columns with its own masked h
          for (int g = 0; g < 4; ++g)
            for (int64_t j0 = g * u; j0 < (g + 1) * u; j0 += 8)
              fwd_columns(std::min<int64_t>(8, (g + 1) * u - j0), in, j0, hs[g], Rb, u, G, act);
        }
        for (int64_t l = 0; l < u; ++l) {
          const V cn = fmadd(act[u + l], cT[l], mul(act[l], act[2 * u + l]));
          const V hn = mul(act[3 * u + l], tanh_v(cn));
          cT[l] = select(real, cn, cT[l]);
          hT[l] = select(real, hn, hT[l]);
          oT[l] = select(real, hn, k.zero_output ? zero() : oT[l]);
        }
      } else if (k.zero_output) {
        for (int64_t l = 0; l < u; ++l) oT[l] = zero();
      }
      // Masked steps repeat the previous output (zeros before the first real step), as the row paths.
      store_block(a.out + t * u, T * u, bb, nr, 0, u, oT);
      if (a.save) {
        store_block(a.cseq + t * u, T * u, bb, nr, 0, u, cT);
        if (any) {  // the gates of masked steps are never read
          store_block(a.gates + t * G, T * G, bb, nr, 0, G, act);
        }
      }
    }
    store_block(a.h, u, bb, nr, 0, u, hT);
    store_block(a.c, u, bb, nr, 0, u, cT);
  }
}

inline void backward(const BwdArgs& a, const float* RTb, int64_t b0, int64_t b1) {
  const Common& k = a.k;
  const int64_t u = k.u, G = k.G, T = k.T, UP = padded(u);
  V dhT[kMaxU], dcT[kMaxU], accT[kMaxU], doT[kMaxU], gt[kMaxG], ctT[kMaxU], cpT[kMaxU], dzT[kMaxG],
      drop[4][kMaxU];
  for (int64_t j = 0; j < kMaxG; ++j) dzT[j] = zero();
  for (int64_t bb = b0; bb < b1; bb += kL) {
    const int nr = static_cast<int>(std::min<int64_t>(kL, b1 - bb));
    load_block(a.dh, u, bb, nr, 0, u, dhT);
    load_block(a.dc, u, bb, nr, 0, u, dcT);
    for (int64_t l = 0; l < UP; ++l) accT[l] = zero();
    load_dropout(k, bb, nr, drop);
    for (int64_t t = T - 1; t >= 0; --t) {
      bool any;
      const V real = real_lanes(k, bb, nr, t, &any);
      load_block(a.dout + t * u, T * u, bb, nr, 0, u, doT);
      if (!any) {
        // Every row masked: output gradients are owed to the last real step; dz = 0; dh, dc pass through.
        if (!k.zero_output) {
          for (int64_t l = 0; l < u; ++l) accT[l] = add(accT[l], doT[l]);
        }
        for (int r = 0; r < nr; ++r) std::fill_n(a.dz + ((bb + r) * T + t) * G, G, 0.0f);
        continue;
      }
      load_block(a.gates + t * G, T * G, bb, nr, 0, G, gt);
      load_block(a.cseq + t * u, T * u, bb, nr, 0, u, ctT);
      if (t > 0) {
        load_block(a.cseq + (t - 1) * u, T * u, bb, nr, 0, u, cpT);
      } else {
        load_block(a.c0, u, bb, nr, 0, u, cpT);
      }
      const V one = set1(1.0f);
      for (int64_t l = 0; l < u; ++l) {
        const V dht = add(add(dhT[l], doT[l]), accT[l]);
        // Real lanes start a new sum; masked ones add their output gradient (none with zero_output_for_mask).
        accT[l] = select(real, zero(), k.zero_output ? accT[l] : add(accT[l], doT[l]));
        const V gi = gt[l], gf = gt[u + l], gg = gt[2 * u + l], go = gt[3 * u + l];
        const V tc = tanh_v(ctT[l]);
        const V dct = fmadd(mul(dht, go), fnmadd(tc, tc, one), dcT[l]);
        dzT[l] = bit_and(real, mul(mul(dct, gg), mul(gi, sub(one, gi))));
        dzT[u + l] = bit_and(real, mul(mul(dct, cpT[l]), mul(gf, sub(one, gf))));
        dzT[2 * u + l] = bit_and(real, mul(mul(dct, gi), fnmadd(gg, gg, one)));
        dzT[3 * u + l] = bit_and(real, mul(mul(dht, tc), mul(go, sub(one, go))));
        dcT[l] = select(real, mul(dct, gf), dcT[l]);
      }
      store_block(a.dz + t * G, T * G, bb, nr, 0, G, dzT);
      for (int64_t l0 = 0; l0 < u; l0 += 8) dh_units(k, l0, dzT, RTb, real, drop, dhT);
    }
    store_block(a.dh, u, bb, nr, 0, u, dhT);
    store_block(a.dc, u, bb, nr, 0, u, dcT);
  }
}

}  // namespace lanes
#endif  // LSTMTEXT_SIMD256
