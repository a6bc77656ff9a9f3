// Fused Keras-LSTM recurrence for CPU float32, forward and backward.
//
// The input projection xz = x @ kernel + bias (B, T, 4u) and every weight gradient are big GEMMs done
// outside (torch ops); this file only runs the part that is sequential in time: the recurrent product
// h_{t-1} @ recurrent_kernel, the gates and the state update, with Keras masking and recurrent dropout.
//
// Rows of the batch are independent, so the batch is split across threads and each thread runs the whole
// time loop on its rows with no per-step synchronisation. Four strategies for one thread's rows:
//   * kVector (AVX-512 or AVX2, u <= 48): per row, each gate's pre-activations live in ceil(u/W) vector
//     registers (W = 16 or 8 lanes, simd.h); z += h[l] * R[l] as broadcast FMAs, activations as vector
//     polynomials, no per-step allocation;
//   * kLanes (automatic on AVX2 CPUs without AVX-512 for u <= 24, built wherever AVX2 is): eight rows in
//     the eight lanes of each 256-bit vector (lstm_lanes.h);
//   * kRows: the same per-row algorithm in plain C++ loops (any CPU; the compiler vectorises what it can);
//   * kGemm (large u): per step one single-threaded GEMM (rows x u) @ (u x 4u) (small_gemm.h: AVX-512 or
//     AVX2 register-blocked against R packed once per call in contiguous column panels, else at::mm), the
//     gate math in vectors. While the weight-gradient partials fit a core's L2 (fused.py decides), its
//     backward also forms the weight gradients step by step (lstm_backward_fused): dx_t = dz_t K^T,
//     dK += x_t^T dz_t, dR += h_{t-1}^T dz_t, db += dz_t, so dz (B, T, 4u) is never written out; above
//     that it writes dz and the weight gradients are GEMMs over all B*T rows (oneDNN, compute-bound).
// Masked steps (mask false) carry h and c and repeat the previous output (zeros before the first real
// step, or always zeros with zero_output_for_mask), exactly as keras/src/backend/torch/rnn.py.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "lstm_args.h"
#include "lstm_lanes.h"  // rows in vector lanes (AVX2 vectors; built wherever AVX2 + FMA is)
#include "small_gemm.h"  // and simd.h: LSTMTEXT_SIMD with AVX-512 or AVX2 + FMA
#include "workspace.h"   // reused buffers for the per-call tensors

namespace {

using namespace lstmtext_lstm;

// ---- scalar activations (Cephes single-precision polynomials, ~1 ulp on the used range) ---------------

inline float exp_approx(float x) {
  // Clamp so that 2^n stays a normal float; sigmoid/tanh saturate long before these bounds.
  x = std::min(std::max(x, -87.0f), 88.0f);
  float fx = std::floor(x * 1.44269504088896341f + 0.5f);
  x = x - fx * 0.693359375f + fx * 2.12194440e-4f;
  const float z = x * x;
  float y = 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * z + x + 1.0f;
  const int32_t n = static_cast<int32_t>(fx);
  const int32_t bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

inline float tanh_approx(float x) {
  const float ax = std::fabs(x);
  // |x| >= 0.625: 1 - 2 / (exp(2|x|) + 1); tanh(9) rounds to 1 in float32.
  const float e = exp_approx(2.0f * std::min(ax, 9.0f));
  const float big = std::copysign(1.0f - 2.0f / (e + 1.0f), x);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = x + x * z * p;
  return ax < 0.625f ? small : big;
}

#ifdef LSTMTEXT_SIMD
using namespace lstmtext_simd;  // the widest vectors built, with exp_v, sigmoid_v, tanh_v (vector_math.h)
#endif

// ---- strategies -----------------------------------------------------------------------------------------

enum Impl : int64_t { kAuto = 0, kRows = 1, kGemm = 2, kVector = 3, kLanes = 4 };
// Rows run through the whole time loop in blocks of this many: enough independent rows to hide the
// latency of one step, few enough that their streams over T stay in cache and the prefetchers follow.
constexpr int64_t kRowBlock = 8;

// A masked step's output: zeros before any real step (t == 0 here means "the previous output is the
// zeros Keras starts from") or with zero_output_for_mask, else a copy of the previous output.
inline void masked_output(const Common& k, float* o_out, int64_t t) {
  if (k.zero_output || t == 0) {
    std::fill(o_out, o_out + k.u, 0.0f);
  } else {
    std::memcpy(o_out, o_out - k.u, k.u * sizeof(float));
  }
}

// C (M x N, row stride ldc) = [C +] A B with A(m, k) = A[m * sam + k * sak], B row-major (row stride ldb);
// single-threaded (called inside a thread's time loop).
void small_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t sam, int64_t sak, const float* B,
                int64_t ldb, float* C, int64_t ldc, bool accumulate) {
#ifdef LSTMTEXT_SIMD
  lstmtext_gemm::gemm(M, N, K, A, sam, sak, B, ldb, C, ldc, accumulate);
#else
  auto At = at::from_blob(const_cast<float*>(A), {M, K}, {sam, sak}, at::kFloat);
  auto Bt = at::from_blob(const_cast<float*>(B), {K, N}, {ldb, 1}, at::kFloat);
  auto Ct = at::from_blob(C, {M, N}, {ldc, 1}, at::kFloat);
  if (accumulate) {
    Ct.addmm_(At, Bt);
  } else {
    Ct.copy_(at::mm(At, Bt));
  }
#endif
}

// small_gemm with B given packed (pack_panels of the same K x N matrix) when Bp is not null.
void recurrent_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t sam, const float* Bp, const float* B,
                 int64_t ldb, float* C, int64_t ldc) {
#ifdef LSTMTEXT_SIMD
  if (Bp != nullptr) return lstmtext_gemm::gemm_packed(M, N, K, A, sam, 1, Bp, C, ldc, false);
#endif
  small_gemm(M, N, K, A, sam, 1, B, ldb, C, ldc, false);
}

// ---- kRows / kGemm forward ------------------------------------------------------------------------------

// z[0:G] += sum_l hm[l] * R[l, 0:G], with hm = h (* mask), for one row.
inline void recurrent_row(float* __restrict z, const float* __restrict h, const float* __restrict R,
                          const float* __restrict m, DropMode mode, int64_t u, float* __restrict hm) {
  const int64_t G = 4 * u;
  if (mode == DropMode::kPerGate) {
    for (int64_t k = 0; k < 4; ++k) {
      const float* mk = m + k * u;
      float* zk = z + k * u;
      for (int64_t l = 0; l < u; ++l) {
        const float hl = h[l] * mk[l];
        const float* r = R + l * G + k * u;
        for (int64_t j = 0; j < u; ++j) zk[j] += hl * r[j];
      }
    }
    return;
  }
  const float* hv = h;
  if (mode == DropMode::kShared) {
    for (int64_t l = 0; l < u; ++l) hm[l] = h[l] * m[l];
    hv = hm;
  }
  for (int64_t l = 0; l < u; ++l) {
    const float hl = hv[l];
    const float* r = R + l * G;
    for (int64_t j = 0; j < G; ++j) z[j] += hl * r[j];
  }
}

// Activated gates z (i f g o) -> new c, h; writes state, output and the saved tensors.
inline void finish_row(const FwdArgs& a, float* __restrict z, int64_t b, int64_t bt) {
  const int64_t u = a.k.u, G = a.k.G;
  for (int64_t j = 0; j < 2 * u; ++j) z[j] = sigmoid_approx(z[j]);
  for (int64_t j = 2 * u; j < 3 * u; ++j) z[j] = tanh_approx(z[j]);
  for (int64_t j = 3 * u; j < 4 * u; ++j) z[j] = sigmoid_approx(z[j]);
  float* h = a.h + b * u;
  float* c = a.c + b * u;
  float* o_out = a.out + bt * u;
  for (int64_t j = 0; j < u; ++j) {
    const float cn = z[u + j] * c[j] + z[j] * z[2 * u + j];
    c[j] = cn;
    const float hn = z[3 * u + j] * tanh_approx(cn);
    h[j] = hn;
    o_out[j] = hn;
  }
  if (a.save) {
    std::memcpy(a.gates + bt * G, z, G * sizeof(float));
    std::memcpy(a.cseq + bt * u, c, u * sizeof(float));
  }
}

// finish_row(z + xrow), in W-lane vectors where built (the scalar activations cost as much as the recurrent
// GEMM itself at large u).
inline void finish_row_plus(const FwdArgs& a, float* __restrict z, const float* __restrict xrow, int64_t b,
                            int64_t bt) {
#ifdef LSTMTEXT_SIMD
  const int64_t u = a.k.u;
  float* h = a.h + b * u;
  float* c = a.c + b * u;
  float* o_out = a.out + bt * u;
  float* gs = a.save ? a.gates + bt * a.k.G : nullptr;
  for (int64_t j = 0; j < u; j += W) {
    const Mask m = first_lanes(u - j);
    const V gi = sigmoid_v(add(load_first(m, z + j), load_first(m, xrow + j)));
    const V gf = sigmoid_v(add(load_first(m, z + u + j), load_first(m, xrow + u + j)));
    const V gg = tanh_v(add(load_first(m, z + 2 * u + j), load_first(m, xrow + 2 * u + j)));
    const V go = sigmoid_v(add(load_first(m, z + 3 * u + j), load_first(m, xrow + 3 * u + j)));
    const V cn = fmadd(gf, load_first(m, c + j), mul(gi, gg));
    const V hn = mul(go, tanh_v(cn));
    store_first(c + j, m, cn);
    store_first(h + j, m, hn);
    store_first(o_out + j, m, hn);
    if (gs != nullptr) {
      store_first(gs + j, m, gi);
      store_first(gs + u + j, m, gf);
      store_first(gs + 2 * u + j, m, gg);
      store_first(gs + 3 * u + j, m, go);
      store_first(a.cseq + bt * u + j, m, cn);
    }
  }
#else
  for (int64_t j = 0; j < a.k.G; ++j) z[j] += xrow[j];
  finish_row(a, z, b, bt);
#endif
}

// dst[0:n] = src[0:n] for the short rows of small u: vector moves instead of a memcpy call per row and step.
inline void copy_floats(float* __restrict dst, const float* __restrict src, int64_t n) {
#ifdef LSTMTEXT_SIMD
  for (int64_t j = 0; j < n; j += W) {
    const Mask m = first_lanes(n - j);
    store_first(dst + j, m, load_first(m, src + j));
  }
#else
  std::memcpy(dst, src, n * sizeof(float));
#endif
}

// Bookkeeping common to every strategy at the start of a step; returns whether the step is real.
inline bool begin_step(const FwdArgs& a, int64_t b, int64_t t) {
  const int64_t u = a.k.u, bt = b * a.k.T + t;
  if (a.hprev != nullptr) copy_floats(a.hprev + bt * u, a.h + b * u, u);
  if (is_real(a.k, bt)) return true;
  if (a.out != nullptr) masked_output(a.k, a.out + bt * u, t);
  if (a.save) std::memcpy(a.cseq + bt * u, a.c + b * u, u * sizeof(float));
  return false;
}

void forward_rows(const FwdArgs& a, int64_t b0, int64_t b1) {
  const Common& k = a.k;
  std::vector<float> z(k.G), hm(k.u);
  for (int64_t t = 0; t < k.T; ++t) {
    for (int64_t b = b0; b < b1; ++b) {
      if (!begin_step(a, b, t)) continue;
      const int64_t bt = b * k.T + t;
      std::memcpy(z.data(), xz_row(a, bt), k.G * sizeof(float));
      recurrent_row(z.data(), a.h + b * k.u, a.R, k.rdm == nullptr ? nullptr : k.rdm + b * k.rdm_stride, k.mode,
                    k.u, hm.data());
      finish_row(a, z.data(), b, bt);
    }
  }
}

// zbuf (rows x 4u) = (h_{t-1} * mask) @ R for the rows b0 .. b0 + rows, plus x_t @ kernel where each step
// projects its own inputs (lstm_forward_x: no (B, T, 4u) projection is written and read back). float32; one
// (u x u) block per gate when the dropout masks differ by gate.
void step_products(const FwdArgs& a, int64_t b0, int64_t rows, int64_t t, float* zbuf, float* hm) {
  const Common& k = a.k;
  const int64_t u = k.u, G = k.G;
  if (k.mode == DropMode::kNone) {
    recurrent_gemm(rows, G, u, a.h + b0 * u, u, a.Rpk, a.R, G, zbuf, G);
  } else {
    const int64_t blocks = k.mode == DropMode::kPerGate ? 4 : 1;
    for (int64_t g = 0; g < blocks; ++g) {
      for (int64_t b = 0; b < rows; ++b) {
        const float* h = a.h + (b0 + b) * u;
        const float* m = k.rdm + (b0 + b) * k.rdm_stride + g * u;
        for (int64_t l = 0; l < u; ++l) hm[b * u + l] = h[l] * m[l];
      }
      if (blocks == 1) {
        recurrent_gemm(rows, G, u, hm, u, a.Rpk, a.R, G, zbuf, G);
      } else {
        small_gemm(rows, u, u, hm, u, 1, a.R + g * u, G, zbuf + g * u, G, false);
      }
    }
  }
  if (a.x != nullptr) {
    const float* xt = a.x + (b0 * k.T + t) * a.F;
#ifdef LSTMTEXT_SIMD
    lstmtext_gemm::gemm_packed(rows, G, a.F, xt, k.T * a.F, 1, a.Kpk, zbuf, G, true);
#else
    small_gemm(rows, G, a.F, xt, k.T * a.F, 1, a.K, G, zbuf, G, true);
#endif
  }
}

#ifdef LSTMTEXT_BF16
// step_products with bfloat16 products (FwdArgs::Rbf set: inference, no recurrent dropout): h_{t-1} and x_t
// rounded to bfloat16 pairs in abf, then multiplied by the packed weights with float32 sums.
void step_products_bf16(const FwdArgs& a, int64_t b0, int64_t rows, int64_t t, float* zbuf, uint32_t* abf) {
  const Common& k = a.k;
  const int64_t u = k.u, G = k.G, up = (u + 1) / 2, Fp = (a.F + 1) / 2;
  lstmtext_gemm::to_bf16_pairs(rows, u, a.h + b0 * u, u, abf);
  lstmtext_gemm::gemm_packed_bf16(rows, G, up, abf, up, a.Rbf, zbuf, G, false);
  if (a.x != nullptr) {
    lstmtext_gemm::to_bf16_pairs(rows, a.F, a.x + (b0 * k.T + t) * a.F, k.T * a.F, abf);
    lstmtext_gemm::gemm_packed_bf16(rows, G, Fp, abf, Fp, a.Kbf, zbuf, G, true);
  }
}
#endif

#ifdef LSTMTEXT_SIMD
// R and, where each step projects its own inputs, the kernel, packed by `pack` for the per-step GEMMs.
template <class Packed, class Pack>
void pack_weights(const FwdArgs& a, Pack pack, Packed& R, Packed& K) {
  const int64_t G = a.k.G;
  R = pack(a.R, a.k.u, G, G);
  if (a.K != nullptr) K = pack(a.K, a.F, G, G);
}
#endif

void forward_gemm(const FwdArgs& a, int64_t b0, int64_t b1) {
  const Common& k = a.k;
  const int64_t rows = b1 - b0, u = k.u, G = k.G;
  std::vector<float> hm(rows * u), zbuf(rows * G);
#ifdef LSTMTEXT_BF16
  std::vector<uint32_t> abf(a.Rbf != nullptr ? rows * std::max((u + 1) / 2, (a.F + 1) / 2) : 0);
#endif
  for (int64_t t = 0; t < k.T; ++t) {
#ifdef LSTMTEXT_BF16
    if (a.Rbf != nullptr) {
      step_products_bf16(a, b0, rows, t, zbuf.data(), abf.data());
    } else {
      step_products(a, b0, rows, t, zbuf.data(), hm.data());
    }
#else
    step_products(a, b0, rows, t, zbuf.data(), hm.data());
#endif
    for (int64_t b = b0; b < b1; ++b) {
      if (!begin_step(a, b, t)) continue;
      const int64_t bt = b * k.T + t;
      finish_row_plus(a, zbuf.data() + (b - b0) * G, a.x != nullptr ? a.bias : xz_row(a, bt), b, bt);
    }
  }
}

// ---- kRows / kGemm backward -----------------------------------------------------------------------------

// Gate gradients of one real step; updates dc in place and returns nothing. dhv = dL/dh_t in total.
inline void gate_grads(const BwdArgs& a, const float* __restrict dhv, int64_t b, int64_t t, float* __restrict dzr) {
  const int64_t u = a.k.u, bt = b * a.k.T + t;
  const float* g = a.gates + bt * a.k.G;
  const float* ct = a.cseq + bt * u;
  const float* cprev = t > 0 ? a.cseq + (bt - 1) * u : a.c0 + b * u;
  float* dc = a.dc + b * u;
  for (int64_t j = 0; j < u; ++j) {
    const float gi = g[j], gf = g[u + j], gg = g[2 * u + j], go = g[3 * u + j];
    const float tc = tanh_approx(ct[j]);
    const float dct = dc[j] + dhv[j] * go * (1.0f - tc * tc);
    dzr[j] = dct * gg * gi * (1.0f - gi);
    dzr[u + j] = dct * cprev[j] * gf * (1.0f - gf);
    dzr[2 * u + j] = dct * gi * (1.0f - gg * gg);
    dzr[3 * u + j] = dhv[j] * tc * go * (1.0f - go);
    dc[j] = dct * gf;
  }
}

#ifdef LSTMTEXT_SIMD
// gate_grads at W lanes.
inline void gate_grads_v(const BwdArgs& a, const float* __restrict dhv, int64_t b, int64_t t, float* __restrict dzr) {
  const int64_t u = a.k.u, bt = b * a.k.T + t;
  const float* g = a.gates + bt * a.k.G;
  const float* ct = a.cseq + bt * u;
  const float* cprev = t > 0 ? a.cseq + (bt - 1) * u : a.c0 + b * u;
  float* dc = a.dc + b * u;
  const V one = set1(1.0f);
  for (int64_t j = 0; j < u; j += W) {
    const Mask m = first_lanes(u - j);
    const V gi = load_first(m, g + j), gf = load_first(m, g + u + j);
    const V gg = load_first(m, g + 2 * u + j), go = load_first(m, g + 3 * u + j);
    const V dh = load_first(m, dhv + j);
    const V tc = tanh_v(load_first(m, ct + j));
    const V dct = fmadd(mul(dh, go), fnmadd(tc, tc, one), load_first(m, dc + j));
    store_first(dzr + j, m, mul(mul(dct, gg), mul(gi, sub(one, gi))));
    store_first(dzr + u + j, m, mul(mul(dct, load_first(m, cprev + j)), mul(gf, sub(one, gf))));
    store_first(dzr + 2 * u + j, m, mul(mul(dct, gi), fnmadd(gg, gg, one)));
    store_first(dzr + 3 * u + j, m, mul(mul(dh, tc), mul(go, sub(one, go))));
    store_first(dc + j, m, mul(dct, gf));
  }
}
#endif

// Output gradient owed to step t of row b (its own plus those of the masked steps repeating it), or
// false for a masked step (whose output gradient is added to acc, owed to the previous real step).
inline bool step_dh(const BwdArgs& a, int64_t b, int64_t t, float* __restrict acc, float* __restrict dhv) {
  const int64_t u = a.k.u, bt = b * a.k.T + t;
  const float* dout = a.dout + bt * u;
  if (!is_real(a.k, bt)) {
    if (!a.k.zero_output) {
      for (int64_t j = 0; j < u; ++j) acc[j] += dout[j];
    }
    if (a.dz != nullptr) std::fill(a.dz + bt * a.k.G, a.dz + (bt + 1) * a.k.G, 0.0f);
    return false;
  }
  const float* dh = a.dh + b * u;
  for (int64_t j = 0; j < u; ++j) {
    dhv[j] = dh[j] + dout[j] + acc[j];
    acc[j] = 0.0f;
  }
  return true;
}

void backward_rows(const BwdArgs& a, int64_t b0, int64_t b1) {
  const Common& k = a.k;
  const int64_t u = k.u;
  std::vector<float> acc((b1 - b0) * u, 0.0f), dhv(u), part(u), sum(u);
  for (int64_t t = k.T - 1; t >= 0; --t) {
    for (int64_t b = b0; b < b1; ++b) {
      if (!step_dh(a, b, t, acc.data() + (b - b0) * u, dhv.data())) continue;
      float* dzr = a.dz + (b * k.T + t) * k.G;
      gate_grads(a, dhv.data(), b, t, dzr);
      // dh_{t-1} = sum over gates g of mask_g * (dz_g @ R_g^T), as u-wide axpys over rows of R^T.
      const float* m = k.rdm == nullptr ? nullptr : k.rdm + b * k.rdm_stride;
      std::fill(sum.begin(), sum.end(), 0.0f);
      for (int64_t g = 0; g < 4; ++g) {
        std::fill(part.begin(), part.end(), 0.0f);
        for (int64_t j = g * u; j < (g + 1) * u; ++j) {
          const float d = dzr[j];
          const float* r = a.RT + j * u;
          for (int64_t l = 0; l < u; ++l) part[l] += d * r[l];
        }
        const float* mg = k.mode == DropMode::kPerGate ? m + g * u : (k.mode == DropMode::kShared ? m : nullptr);
        for (int64_t l = 0; l < u; ++l) sum[l] += mg == nullptr ? part[l] : part[l] * mg[l];
      }
      std::memcpy(a.dh + b * u, sum.data(), u * sizeof(float));
    }
  }
}

// Per-thread partial weight gradients of the fused kGemm backward, summed in row order afterwards.
struct WeightGrads {
  int64_t b0 = 0;
  std::vector<float> dK, dR, db;
};

void backward_gemm(const BwdArgs& a, int64_t b0, int64_t b1, WeightGrads* wg) {
  const Common& k = a.k;
  const int64_t u = k.u, G = k.G, T = k.T, F = a.F, rows = b1 - b0;
  const bool fuse = wg != nullptr;           // dR and db step by step
  const bool fuse_x = fuse && a.x != nullptr;  // dx and dK too
  std::vector<float> acc(rows * u, 0.0f), dhv(u), dzbuf(rows * G), dhbuf(rows * u), part(rows * u), hm(rows * u);
  std::vector<uint8_t> real(rows);
  if (fuse) {
    wg->b0 = b0;
    wg->dK.assign(F * G, 0.0f);
    wg->dR.assign(u * G, 0.0f);
    wg->db.assign(G, 0.0f);
  }
  for (int64_t t = T - 1; t >= 0; --t) {
    for (int64_t b = b0; b < b1; ++b) {
      float* dzl = dzbuf.data() + (b - b0) * G;
      real[b - b0] = step_dh(a, b, t, acc.data() + (b - b0) * u, dhv.data());
      if (!real[b - b0]) {
        std::fill(dzl, dzl + G, 0.0f);
        continue;
      }
#ifdef LSTMTEXT_SIMD
      gate_grads_v(a, dhv.data(), b, t, dzl);
#else
      gate_grads(a, dhv.data(), b, t, dzl);
#endif
      if (a.dz != nullptr) std::memcpy(a.dz + (b * T + t) * G, dzl, G * sizeof(float));
    }
    // dh_{t-1} for the slice: (rows x 4u) @ R^T (4u x u), one (u x u) block per gate when masks differ by gate.
    if (k.mode == DropMode::kPerGate) {
      std::fill(dhbuf.begin(), dhbuf.end(), 0.0f);
      for (int64_t g = 0; g < 4; ++g) {
        small_gemm(rows, u, u, dzbuf.data() + g * u, G, 1, a.RT + g * u * u, u, part.data(), u, false);
        for (int64_t b = 0; b < rows; ++b) {
          const float* mg = k.rdm + (b0 + b) * k.rdm_stride + g * u;
          for (int64_t l = 0; l < u; ++l) dhbuf[b * u + l] += part[b * u + l] * mg[l];
        }
      }
    } else {
      recurrent_gemm(rows, u, G, dzbuf.data(), G, a.RTpk, a.RT, u, dhbuf.data(), u);
    }
    if (fuse) {
      const int64_t bt0 = b0 * T + t;
      if (fuse_x) {
        // dx_t = dz_t K^T, straight into the (B, T, F) gradient; masked rows have dz = 0, so dx = 0.
        small_gemm(rows, F, G, dzbuf.data(), G, 1, a.KT, F, a.dx + bt0 * F, T * F, false);
        // dK += x_t^T dz_t, reading x_t^T of the slice in place.
        small_gemm(F, G, rows, a.x + bt0 * F, 1, T * F, dzbuf.data(), G, wg->dK.data(), G, true);
      }
      // dR += (h_{t-1} * mask)^T dz_t, per gate block when the masks differ by gate.
      if (k.mode == DropMode::kNone) {
        small_gemm(u, G, rows, a.hprev + bt0 * u, 1, T * u, dzbuf.data(), G, wg->dR.data(), G, true);
      } else {
        const int64_t blocks = k.mode == DropMode::kPerGate ? 4 : 1;
        for (int64_t g = 0; g < blocks; ++g) {
          for (int64_t b = 0; b < rows; ++b) {
            const float* h = a.hprev + ((b0 + b) * T + t) * u;
            const float* m = k.rdm + (b0 + b) * k.rdm_stride + g * u;
            for (int64_t l = 0; l < u; ++l) hm[b * u + l] = h[l] * m[l];
          }
          const int64_t n = blocks == 1 ? G : u;
          small_gemm(u, n, rows, hm.data(), 1, u, dzbuf.data() + g * u, G, wg->dR.data() + g * u, G, true);
        }
      }
      float* db = wg->db.data();
      for (int64_t b = 0; b < rows; ++b) {
        const float* dzl = dzbuf.data() + b * G;
        for (int64_t j = 0; j < G; ++j) db[j] += dzl[j];
      }
    }
    for (int64_t b = 0; b < rows; ++b) {
      if (!real[b]) continue;  // masked step: dh passes through unchanged
      float* dh = a.dh + (b0 + b) * u;
      const float* src = dhbuf.data() + b * u;
      if (k.mode == DropMode::kShared) {
        const float* m = k.rdm + (b0 + b) * k.rdm_stride;
        for (int64_t l = 0; l < u; ++l) dh[l] = src[l] * m[l];
      } else {
        std::memcpy(dh, src, u * sizeof(float));
      }
    }
  }
}

#ifdef LSTMTEXT_SIMD
// ---- kVector: one row at a time, NV = ceil(u / W) registers per gate (W = 16 on AVX-512, 8 on AVX2) ----

// R (u, 4u) -> (u, 4, P) and R^T (4u, u) -> (4u, P), P = W * NV, zero padded.
std::vector<float> pad_rows(const float* src, int64_t rows, int64_t cols_per_block, int64_t blocks, int64_t P) {
  std::vector<float> dst(rows * blocks * P, 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < blocks; ++g)
      std::memcpy(&dst[(r * blocks + g) * P], src + r * cols_per_block * blocks + g * cols_per_block,
                  cols_per_block * sizeof(float));
  return dst;
}

// One step of RB rows in lock-step: a row's step is a long dependency chain (recurrent FMAs, then the
// gate activations, then tanh(c)), so independent rows are interleaved to keep the vector units busy.
// Masked rows are computed too (finite, discarded) and not stored.
template <int NV, int RB>
inline void forward_group(const FwdArgs& a, const float* Rp, const Lanes<NV>& L, int64_t b, int64_t t) {
  const Common& k = a.k;
  const int64_t u = k.u, G = k.G, P = W * NV;
  bool real[RB];
  bool any = false;
  for (int r = 0; r < RB; ++r) any |= (real[r] = begin_step(a, b + r, t));
  if (!any) return;
  V z[RB][4][NV];
  for (int r = 0; r < RB; ++r) {
    const float* xrow = xz_row(a, (b + r) * k.T + t);
    for (int g = 0; g < 4; ++g)
      for (int v = 0; v < NV; ++v) z[r][g][v] = L.load(v, xrow + g * u + W * v);
  }
  // The next step of these rows reads its token's table row: fetched while this step computes.
  if (a.ids != nullptr && t + 1 < k.T) {
    for (int r = 0; r < RB; ++r) prefetch_floats(xz_row(a, (b + r) * k.T + t + 1), G);
  }
  // z += (h * mask) @ R. The dropout mode is resolved outside the l loop: with one multiplier per unit
  // (none or shared) each h[l] is broadcast once for the four gates.
  if (k.mode != DropMode::kPerGate) {
    alignas(64) float hm[RB][kRowMaxUnits];
    const float* hr[RB];
    for (int r = 0; r < RB; ++r) {
      hr[r] = a.h + (b + r) * u;
      if (k.mode == DropMode::kShared) {
        const float* m = k.rdm + (b + r) * k.rdm_stride;
        for (int64_t l = 0; l < u; ++l) hm[r][l] = hr[r][l] * m[l];
        hr[r] = hm[r];
      }
    }
    for (int64_t l = 0; l < u; ++l) {
      const float* rl = Rp + l * 4 * P;
      for (int r = 0; r < RB; ++r) {
        const V hv = set1(hr[r][l]);
        for (int g = 0; g < 4; ++g)
          for (int v = 0; v < NV; ++v) z[r][g][v] = fmadd(hv, loadu(rl + g * P + W * v), z[r][g][v]);
      }
    }
  } else {
    for (int64_t l = 0; l < u; ++l) {
      const float* rl = Rp + l * 4 * P;
      for (int r = 0; r < RB; ++r) {
        const float hl = a.h[(b + r) * u + l];
        const float* m = k.rdm + (b + r) * k.rdm_stride;
        for (int g = 0; g < 4; ++g) {
          const V hv = set1(hl * m[g * u + l]);
          for (int v = 0; v < NV; ++v) z[r][g][v] = fmadd(hv, loadu(rl + g * P + W * v), z[r][g][v]);
        }
      }
    }
  }
  for (int v = 0; v < NV; ++v) {
    V gi[RB], gf[RB], gg[RB], go[RB], cn[RB], hn[RB];
    for (int r = 0; r < RB; ++r) {
      gi[r] = sigmoid_v(z[r][0][v]);
      gf[r] = sigmoid_v(z[r][1][v]);
      gg[r] = tanh_v(z[r][2][v]);
      go[r] = sigmoid_v(z[r][3][v]);
      cn[r] = fmadd(gf[r], L.load(v, a.c + (b + r) * u + W * v), mul(gi[r], gg[r]));
    }
    for (int r = 0; r < RB; ++r) hn[r] = mul(go[r], tanh_v(cn[r]));
    for (int r = 0; r < RB; ++r) {
      if (!real[r]) continue;
      const int64_t br = b + r, bt = br * k.T + t, o = W * v;
      L.store(v, a.c + br * u + o, cn[r]);
      L.store(v, a.h + br * u + o, hn[r]);
      if (a.out != nullptr) L.store(v, a.out + bt * u + o, hn[r]);
      if (a.save) {
        float* gr = a.gates + bt * G + o;
        L.store(v, gr, gi[r]);
        L.store(v, gr + u, gf[r]);
        L.store(v, gr + 2 * u, gg[r]);
        L.store(v, gr + 3 * u, go[r]);
        L.store(v, a.cseq + bt * u + o, cn[r]);
      }
    }
  }
}

template <int NV, int RB>
void forward_vector(const FwdArgs& a, const float* Rp, int64_t b0, int64_t b1) {
  const Lanes<NV> L(a.k.u);
  for (int64_t bb = b0; bb < b1; bb += kRowBlock) {
    const int64_t be = std::min(bb + kRowBlock, b1);
    for (int64_t t = 0; t < a.k.T; ++t) {
      int64_t b = bb;
      for (; b + RB <= be; b += RB) forward_group<NV, RB>(a, Rp, L, b, t);
      for (; b < be; ++b) forward_group<NV, 1>(a, Rp, L, b, t);
    }
  }
}

// Per-thread state of the kVector backward with the embedding backward fused (BwdArgs::ids set): the step
// gradients go straight into this thread's partial of the projected table's gradient, and dR is formed in
// the loop from h_{t-1} recomputed as o_{t-1} * tanh(c_{t-1}) (both saved), so the forward stores no h_{t-1}
// and the backward writes no dz. The reverse loop meets step t's h only after step t's successor, so each
// row keeps the dz of its last real step pending until the next real step back (or h0) supplies its h_{t-1};
// masked steps have dz = 0 and carry h, so one pending dz per row is enough.
struct IdsState {
  float* dproj;  // (V, 4u) this thread's partial table gradient
  float* dR;     // (u, 4, P) this thread's partial dR, padded gate blocks
  float* pend;   // (kRowBlock, 4, P) pending dz per row of the current block
  bool has_pend[kRowBlock];
  int64_t bb;    // first row of the current block
};

// dR += (h * mask)^T pend for the rows r of a group with take[r]; h given per row as P floats (zero padded).
template <int NV, int RB>
LSTMTEXT_INLINE void accumulate_dr(const Common& k, IdsState& st, int64_t b, const float (&h)[RB][W * NV],
                                   const bool (&take)[RB]) {
  const int64_t u = k.u, P = W * NV;
  const float* pr[RB];
  const float* m[RB];
  for (int r = 0; r < RB; ++r) {
    pr[r] = st.pend + (b + r - st.bb) * 4 * P;
    m[r] = k.rdm == nullptr ? nullptr : k.rdm + (b + r) * k.rdm_stride;
  }
  if (k.mode != DropMode::kPerGate) {
    // One multiplier per unit: the rows' pending dz stay in registers for the whole l loop and each h[l] is
    // broadcast once for the four gates (loading dz again for every l cost a fifth of the tutorial backward).
    // Rows not taken contribute zeros (their h is not set).
    V pv[RB][4][NV];
    for (int r = 0; r < RB; ++r)
      for (int g = 0; g < 4; ++g)
        for (int v = 0; v < NV; ++v) pv[r][g][v] = take[r] ? loadu(pr[r] + g * P + W * v) : zero();
    for (int64_t l = 0; l < u; ++l) {
      V hb[RB];
      for (int r = 0; r < RB; ++r)
        hb[r] = !take[r] ? zero() : set1(k.mode == DropMode::kShared ? h[r][l] * m[r][l] : h[r][l]);
      for (int g = 0; g < 4; ++g) {
        float* dst = st.dR + (l * 4 + g) * P;
        for (int v = 0; v < NV; ++v) {
          V s = loadu(dst + W * v);
          for (int r = 0; r < RB; ++r) s = fmadd(hb[r], pv[r][g][v], s);
          storeu(dst + W * v, s);
        }
      }
    }
    return;
  }
  for (int64_t l = 0; l < u; ++l) {
    for (int g = 0; g < 4; ++g) {
      float* dst = st.dR + (l * 4 + g) * P;
      for (int v = 0; v < NV; ++v) {
        V s = loadu(dst + W * v);
        for (int r = 0; r < RB; ++r) {
          if (!take[r]) continue;
          const float hl = h[r][l] * m[r][g * u + l];
          s = fmadd(set1(hl), loadu(pr[r] + g * P + W * v), s);
        }
        storeu(dst + W * v, s);
      }
    }
  }
}

template <int NV, int RB, bool kIds>
inline void backward_group(const BwdArgs& a, const float* RTp, const Lanes<NV>& L, float* acc, int64_t b,
                           int64_t t, IdsState* st) {
  const Common& k = a.k;
  const int64_t u = k.u, G = k.G, P = W * NV;
  bool real[RB];
  bool any = false;
  for (int r = 0; r < RB; ++r) {
    const int64_t bt = (b + r) * k.T + t;
    real[r] = is_real(k, bt);
    any |= real[r];
    if (!real[r]) {
      // Masked step: its output gradient is owed to the last real step; dz is zero, dh and dc pass through.
      float* ac = acc + r * u;
      if (!k.zero_output && a.dout != nullptr) {
        const float* dout = a.dout + bt * u;
        for (int64_t j = 0; j < u; ++j) ac[j] += dout[j];
      }
      if (!kIds) std::fill(a.dz + bt * G, a.dz + (bt + 1) * G, 0.0f);
    }
  }
  if (!any) return;
  if (t > 0) {
    // The saved gates and c of these rows' previous step (read next, in reverse time): fetched meanwhile.
    for (int r = 0; r < RB; ++r) {
      const int64_t bp = (b + r) * k.T + t - 1;
      prefetch_floats(a.gates + bp * G, G);
      prefetch_floats(a.cseq + (t > 1 ? bp - 1 : bp) * u, t > 1 ? 2 * u : u);
    }
  }
  alignas(64) float dzl[RB][4][P];
  alignas(64) float hl[RB][kIds ? P : 1];  // h after step t (o_t * tanh(c_t)), for the pending dz
  const V one = set1(1.0f);
  for (int v = 0; v < NV; ++v) {
    const int64_t o = W * v;
    for (int r = 0; r < RB; ++r) {
      if (!real[r]) {  // zero rows of dz: no contribution to dh_{t-1}, which is not stored for this row
        for (int g = 0; g < 4; ++g) storeu(&dzl[r][g][o], zero());
        continue;
      }
      const int64_t br = b + r, bt = br * k.T + t;
      float* ac = acc + r * u;
      const float* gr = a.gates + bt * G;
      const float* cprev = t > 0 ? a.cseq + (bt - 1) * u : a.c0 + br * u;
      V dht = L.load(v, a.dh + br * u + o);
      if (!kIds || a.dout != nullptr) dht = add(dht, L.load(v, a.dout + bt * u + o));
      dht = add(dht, L.load(v, ac + o));
      L.store(v, ac + o, zero());
      const V gi = L.load(v, gr + o);
      const V gf = L.load(v, gr + u + o);
      const V gg = L.load(v, gr + 2 * u + o);
      const V go = L.load(v, gr + 3 * u + o);
      const V tc = tanh_v(L.load(v, a.cseq + bt * u + o));
      const V dct = fmadd(mul(dht, go), fnmadd(tc, tc, one), L.load(v, a.dc + br * u + o));
      // Lanes past u hold zeros (zero-filled loads), so the padded rows of dzl stay zero.
      const V dzi = mul(mul(dct, gg), mul(gi, sub(one, gi)));
      const V dzf = mul(mul(dct, L.load(v, cprev + o)), mul(gf, sub(one, gf)));
      const V dzg = mul(mul(dct, gi), fnmadd(gg, gg, one));
      const V dzo = mul(mul(dht, tc), mul(go, sub(one, go)));
      L.store(v, a.dc + br * u + o, mul(dct, gf));
      storeu(&dzl[r][0][o], dzi);
      storeu(&dzl[r][1][o], dzf);
      storeu(&dzl[r][2][o], dzg);
      storeu(&dzl[r][3][o], dzo);
      if constexpr (kIds) {
        storeu(&hl[r][o], mul(go, tc));
        float* dp = st->dproj + a.ids[bt] * G + o;  // the table row of this step's token
        L.store(v, dp, add(L.load(v, dp), dzi));
        L.store(v, dp + u, add(L.load(v, dp + u), dzf));
        L.store(v, dp + 2 * u, add(L.load(v, dp + 2 * u), dzg));
        L.store(v, dp + 3 * u, add(L.load(v, dp + 3 * u), dzo));
      } else {
        float* dzr = a.dz + bt * G + o;
        L.store(v, dzr, dzi);
        L.store(v, dzr + u, dzf);
        L.store(v, dzr + 2 * u, dzg);
        L.store(v, dzr + 3 * u, dzo);
      }
    }
  }
  if constexpr (kIds) {
    // The pending dz of each real row meets its h_{t-1} = h after this step; this step's dz becomes pending.
    bool take[RB];
    bool some = false;
    for (int r = 0; r < RB; ++r) {
      take[r] = real[r] && st->has_pend[b + r - st->bb];
      some |= take[r];
    }
    if (some) accumulate_dr<NV, RB>(k, *st, b, hl, take);
    for (int r = 0; r < RB; ++r) {
      if (!real[r]) continue;
      std::memcpy(st->pend + (b + r - st->bb) * 4 * P, &dzl[r][0][0], 4 * P * sizeof(float));
      st->has_pend[b + r - st->bb] = true;
    }
  }
  // dh_{t-1}[l] = sum_g mask_g[l] * sum_j dz_g[j] * R[l, g*u + j], as broadcast FMAs over rows of R^T.
  V sum[RB][NV];
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < NV; ++v) sum[r][v] = zero();
  for (int g = 0; g < 4; ++g) {
    V part[RB][NV];
    for (int r = 0; r < RB; ++r)
      for (int v = 0; v < NV; ++v) part[r][v] = zero();
    for (int64_t j = 0; j < u; ++j) {
      const float* rj = RTp + (g * u + j) * P;
      for (int r = 0; r < RB; ++r) {
        const V d = set1(dzl[r][g][j]);
        for (int v = 0; v < NV; ++v) part[r][v] = fmadd(d, loadu(rj + W * v), part[r][v]);
      }
    }
    for (int r = 0; r < RB; ++r) {
      const float* m = k.rdm == nullptr ? nullptr : k.rdm + (b + r) * k.rdm_stride;
      for (int v = 0; v < NV; ++v) {
        if (k.mode == DropMode::kPerGate) {
          sum[r][v] = fmadd(part[r][v], L.load(v, m + g * u + W * v), sum[r][v]);
        } else {
          sum[r][v] = add(sum[r][v], part[r][v]);
        }
      }
    }
  }
  for (int r = 0; r < RB; ++r) {
    if (!real[r]) continue;  // masked step: dh passes through unchanged
    const float* m = k.rdm == nullptr ? nullptr : k.rdm + (b + r) * k.rdm_stride;
    for (int v = 0; v < NV; ++v) {
      V s = sum[r][v];
      if (k.mode == DropMode::kShared) s = mul(s, L.load(v, m + W * v));
      L.store(v, a.dh + (b + r) * u + W * v, s);
    }
  }
}

// Rows whose dz is still pending after step 0: their h_{t-1} is h0.
template <int NV>
void flush_pending(const BwdArgs& a, IdsState& st, int64_t be) {
  const Lanes<NV> L(a.k.u);
  for (int64_t b = st.bb; b < be; ++b) {
    if (!st.has_pend[b - st.bb]) continue;
    alignas(64) float h[1][W * NV];
    for (int v = 0; v < NV; ++v) storeu(&h[0][W * v], L.load(v, a.h0 + b * a.k.u + W * v));
    const bool take[1] = {true};
    accumulate_dr<NV, 1>(a.k, st, b, h, take);
    st.has_pend[b - st.bb] = false;
  }
}

template <int NV, int RB>
void backward_vector(const BwdArgs& a, const float* RTp, int64_t b0, int64_t b1, IdsState* st) {
  const Lanes<NV> L(a.k.u);
  std::vector<float> acc((b1 - b0) * a.k.u, 0.0f);  // output grads of masked steps, owed to the last real step
  for (int64_t bb = b0; bb < b1; bb += kRowBlock) {
    const int64_t be = std::min(bb + kRowBlock, b1);
    if (st != nullptr) {
      st->bb = bb;
      std::fill(std::begin(st->has_pend), std::end(st->has_pend), false);
    }
    for (int64_t t = a.k.T - 1; t >= 0; --t) {
      int64_t b = bb;
      auto ac = [&](int64_t row) { return acc.data() + (row - b0) * a.k.u; };
      if (st != nullptr) {
        for (; b + RB <= be; b += RB) backward_group<NV, RB, true>(a, RTp, L, ac(b), b, t, st);
        for (; b < be; ++b) backward_group<NV, 1, true>(a, RTp, L, ac(b), b, t, st);
      } else {
        for (; b + RB <= be; b += RB) backward_group<NV, RB, false>(a, RTp, L, ac(b), b, t, nullptr);
        for (; b < be; ++b) backward_group<NV, 1, false>(a, RTp, L, ac(b), b, t, nullptr);
      }
    }
    if (st != nullptr) flush_pending<NV>(a, *st, be);
  }
}

// Instantiations by NV = ceil(u / W), u <= kRowMaxUnits, with the rows interleaved per group (RB) chosen so
// that z (RB * 4 * NV vectors) fits the register file: 32 registers on AVX-512, 16 on AVX2.
template <typename Run>
void vector_by_width(int64_t nv, const Run& run) {
#if LSTMTEXT_SIMD == 512
  switch (nv) {
    case 1: return run.template operator()<1, 4>();
    case 2: return run.template operator()<2, 2>();
    default: return run.template operator()<3, 1>();
  }
#else
  switch (nv) {
    case 1: return run.template operator()<1, 2>();
    case 2: return run.template operator()<2, 1>();
    case 3: return run.template operator()<3, 1>();
    case 4: return run.template operator()<4, 1>();
    case 5: return run.template operator()<5, 1>();
    default: return run.template operator()<6, 1>();
  }
#endif
}

struct ForwardVector {
  const FwdArgs& a;
  const float* Rp;
  int64_t b0, b1;
  template <int NV, int RB>
  void operator()() const { forward_vector<NV, RB>(a, Rp, b0, b1); }
};

struct BackwardVector {
  const BwdArgs& a;
  const float* RTp;
  int64_t b0, b1;
  IdsState* st = nullptr;
  template <int NV, int RB>
  void operator()() const { backward_vector<NV, RB>(a, RTp, b0, b1, st); }
};
#endif  // LSTMTEXT_SIMD

// ---- dispatch -------------------------------------------------------------------------------------------

bool vector_available() {
#ifdef LSTMTEXT_SIMD
  return true;
#else
  return false;
#endif
}

bool lanes_available() {
#ifdef LSTMTEXT_LANES
  return true;
#else
  return false;
#endif
}

// Largest u for which kLanes is the automatic choice. Measured on an AVX2 CPU (AMD Zen 3, one thread,
// B = 128, T = 300, forward + backward, interleaved in one process): lanes / vector time 0.74 at u = 10,
// 0.84 at u = 20, 1.00 at u = 24, 1.04 at u = 32, 1.13 at u = 40, where its pre-broadcast recurrent kernel
// (u * 4u * 8 floats) no longer fits the L1 cache.
constexpr int64_t kLanesMaxUnits = 24;

// Small u: kLanes where it is built (AVX2 without AVX-512: no lane wasted on padding) up to kLanesMaxUnits,
// else kVector (AVX-512 or AVX2), else plain rows; large u: one GEMM per step.
// The strategies, in Impl order: the one list Python reads (strategy_names), and whether this build has each.
constexpr const char* kStrategyNames[] = {"auto", "rows", "gemm", "vector", "lanes"};

bool strategy_built(int64_t impl) {
  switch (impl) {
    case kVector: return vector_available();
    case kLanes: return lanes_available();
    default: return impl >= kAuto && impl <= kLanes;
  }
}

// The selector: a forced strategy where it is built and serves u, else the choice by shape.
int64_t resolve_impl(int64_t impl, int64_t u) {
  if (impl != kAuto && strategy_built(impl) && (impl == kRows || impl == kGemm || u <= kRowMaxUnits)) return impl;
  if (u > kRowMaxUnits) return kGemm;
#if LSTMTEXT_SIMD == 256
  // Only without AVX-512: there a gate of u <= 16 fills one 16-lane vector and kVector measured as fast or
  // faster (AMD Zen 4, one thread, B = 128, T = 300: lanes / vector 1.05 at u = 10, 1.09 at u = 20).
  if (lanes_available() && u <= kLanesMaxUnits) return kLanes;
#endif
  return vector_available() ? kVector : kRows;
}

Common make_common(int64_t B, int64_t T, int64_t u, const std::optional<at::Tensor>& mask,
                   const std::optional<at::Tensor>& rdmask, bool zero_output, at::Tensor& mask_keep,
                   at::Tensor& rdm_keep) {
  Common k{B, T, u, 4 * u, DropMode::kNone, 0, nullptr, nullptr, zero_output};
  if (mask.has_value() && mask->defined()) {
    TORCH_CHECK(mask->dim() == 2 && mask->size(0) == B && mask->size(1) == T, "lstm kernel: mask must be (B, T)");
    mask_keep = mask->to(at::kBool).contiguous();
    k.mask = mask_keep.data_ptr<bool>();
  }
  if (rdmask.has_value() && rdmask->defined()) {
    rdm_keep = rdmask->to(at::kFloat).contiguous();
    const bool shared = rdm_keep.dim() == 2;
    TORCH_CHECK(rdm_keep.size(0) == B && rdm_keep.numel() == B * u * (shared ? 1 : 4),
                "lstm kernel: rdmask must be (B, u) or (B, 4, u)");
    k.mode = shared ? DropMode::kShared : DropMode::kPerGate;
    k.rdm_stride = shared ? u : 4 * u;
    k.rdm = rdm_keep.data_ptr<float>();
  }
  return k;
}

// The forward of both ops: xz (B, T, 4u), or (ids (B, T), table (V, 4u)) with xz = table[ids].
std::vector<at::Tensor> forward_impl(const at::Tensor& xz, const at::Tensor* ids, int64_t B, int64_t T,
                                     const at::Tensor& R, const at::Tensor& h0, const at::Tensor& c0,
                                     const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& rdmask,
                                     bool zero_output, bool save, int64_t impl, bool save_hprev = true,
                                     bool keep_out = true, const at::Tensor* kernel = nullptr,
                                     const at::Tensor* bias = nullptr, bool bf16 = false) {
  // With `kernel`, xz holds the layer inputs x (B, T, F) and each step projects its own (lstm_forward_x).
  TORCH_CHECK(xz.device().is_cpu() && xz.scalar_type() == at::kFloat && xz.is_contiguous(),
              "lstm kernel: xz must be a contiguous CPU float32 tensor");
  TORCH_CHECK(R.dim() == 2 && R.size(1) == 4 * R.size(0) && R.is_contiguous() && R.scalar_type() == at::kFloat,
              "lstm kernel: recurrent_kernel must be a contiguous float32 (u, 4u) tensor");
  TORCH_CHECK(kernel != nullptr || xz.size(-1) == R.size(1), "lstm kernel: xz last dim must be 4u");
  TORCH_CHECK(h0.size(0) == B && h0.size(1) == R.size(0) && c0.sizes() == h0.sizes(),
              "lstm kernel: h0 and c0 must be (B, u)");
  const int64_t u = R.size(0);
  at::Tensor mask_keep, rdm_keep;
  FwdArgs a{make_common(B, T, u, mask, rdmask, zero_output, mask_keep, rdm_keep)};
  const int64_t how = resolve_impl(impl, u);
  // Without keep_out (a caller that needs only the last output, which is h_T) kVector writes no (B, T, u)
  // outputs and returns an empty tensor; the other strategies write them regardless.
  const bool no_out = !keep_out && how == kVector;
  auto out = no_out ? at::empty({0}, xz.options()) : lstmtext_workspace::empty({B, T, u});
  auto hT = h0.to(at::kFloat).contiguous().clone();
  auto cT = c0.to(at::kFloat).contiguous().clone();
  // Without autograd nothing is kept for the backward (empty tensors, not undefined ones, cross to Python).
  at::Tensor gates = at::empty({0}, xz.options()), cseq = gates, hprev = gates;
  if (save) {
    gates = lstmtext_workspace::empty({B, T, 4 * u});
    cseq = lstmtext_workspace::empty({B, T, u});
    if (save_hprev) hprev = lstmtext_workspace::empty({B, T, u});
  }
  a.xz = xz.data_ptr<float>();
  if (ids != nullptr) a.ids = ids->data_ptr<int64_t>();
  a.R = R.data_ptr<float>();
  a.out = no_out ? nullptr : out.data_ptr<float>();
  a.h = hT.data_ptr<float>();
  a.c = cT.data_ptr<float>();
  a.save = save;
  a.gates = save ? gates.data_ptr<float>() : nullptr;
  a.cseq = save ? cseq.data_ptr<float>() : nullptr;
  a.hprev = save && save_hprev ? hprev.data_ptr<float>() : nullptr;
#ifdef LSTMTEXT_SIMD
  const int64_t nv = (u + W - 1) / W;
  std::vector<float> Rp;
  if (how == kVector) Rp = pad_rows(a.R, u, u, 4, W * nv);
#endif
#ifdef LSTMTEXT_LANES
  std::vector<float> Rb;
  if (how == kLanes) Rb = lanes::broadcast_recurrent(a.R, u);
#endif
  at::Tensor kernel_c;
  std::vector<float> bias_row;
  if (kernel != nullptr) {
    TORCH_CHECK(how == kGemm, "lstm kernel: the per-step input projection is for the kGemm strategy");
    kernel_c = kernel->to(at::kFloat).contiguous();
    TORCH_CHECK(xz.dim() == 3 && kernel_c.dim() == 2 && kernel_c.size(0) == xz.size(2) &&
                    kernel_c.size(1) == 4 * u, "lstm kernel: x must be (B, T, F) and kernel (F, 4u)");
    a.F = xz.size(2);
    a.K = kernel_c.data_ptr<float>();
    a.x = a.xz;
    a.xz = nullptr;
    bias_row.assign(4 * u, 0.0f);
    if (bias != nullptr && bias->defined()) {
      TORCH_CHECK(bias->numel() == 4 * u, "lstm kernel: bias must be (4u)");
      auto bias_c = bias->to(at::kFloat).contiguous();
      std::memcpy(bias_row.data(), bias_c.data_ptr<float>(), 4 * u * sizeof(float));
    }
    a.bias = bias_row.data();
  }
#ifdef LSTMTEXT_SIMD
  // The weights of the per-step GEMMs, packed once per call: as bfloat16 pairs for inference inside
  // bfloat16_matmuls() (the backward reads nothing computed from them), else as float32 panels.
  std::vector<float> Rpk, Kpk;
#ifdef LSTMTEXT_BF16
  std::vector<uint32_t> Rbf, Kbf;
  if (bf16 && !save && how == kGemm && a.k.mode == DropMode::kNone) {
    pack_weights(a, lstmtext_gemm::pack_panels_bf16, Rbf, Kbf);
    a.Rbf = Rbf.data();
    a.Kbf = a.K != nullptr ? Kbf.data() : nullptr;
  }
#endif
  if (how == kGemm && a.Rbf == nullptr) {
    pack_weights(a, lstmtext_gemm::pack_panels, Rpk, Kpk);
    a.Rpk = Rpk.data();
    a.Kpk = a.K != nullptr ? Kpk.data() : nullptr;
  }
#endif
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    if (how == kGemm) return forward_gemm(a, b0, b1);
#ifdef LSTMTEXT_LANES
    if (how == kLanes) return lanes::forward(a, Rb.data(), b0, b1);
#endif
#ifdef LSTMTEXT_SIMD
    if (how == kVector) return vector_by_width(nv, ForwardVector{a, Rp.data(), b0, b1});
#endif
    forward_rows(a, b0, b1);
  });
  return {out, hT, cT, gates, cseq, hprev};
}

// The kGemm strategy's forward with the input projection taken per step inside the time loop: x (B, T, F),
// kernel (F, 4u), bias (4u) or none; the results of lstm_forward.
std::vector<at::Tensor> lstm_forward_x(const at::Tensor& x, const at::Tensor& kernel,
                                       const std::optional<at::Tensor>& bias, const at::Tensor& R,
                                       const at::Tensor& h0, const at::Tensor& c0,
                                       const std::optional<at::Tensor>& mask,
                                       const std::optional<at::Tensor>& rdmask, bool zero_output, bool save,
                                       int64_t impl, bool bf16) {
  TORCH_CHECK(x.dim() == 3, "lstm kernel: x must be (B, T, F)");
  const at::Tensor* b = bias.has_value() && bias->defined() ? &*bias : nullptr;
  return forward_impl(x, nullptr, x.size(0), x.size(1), R, h0, c0, mask, rdmask, zero_output, save, impl, true,
                      true, &kernel, b, bf16);
}

std::vector<at::Tensor> lstm_forward(const at::Tensor& xz, const at::Tensor& R, const at::Tensor& h0,
                                     const at::Tensor& c0, const std::optional<at::Tensor>& mask,
                                     const std::optional<at::Tensor>& rdmask, bool zero_output, bool save,
                                     int64_t impl, bool bf16) {
  TORCH_CHECK(xz.dim() == 3, "lstm kernel: xz must be (B, T, 4u)");
  return forward_impl(xz, nullptr, xz.size(0), xz.size(1), R, h0, c0, mask, rdmask, zero_output, save, impl, true,
                      true, nullptr, nullptr, bf16);
}

// xz = table[ids] without materialising it: each step reads its token's row of the (V, 4u) table.
std::vector<at::Tensor> lstm_forward_ids(const at::Tensor& table, const at::Tensor& ids, const at::Tensor& R,
                                         const at::Tensor& h0, const at::Tensor& c0,
                                         const std::optional<at::Tensor>& mask,
                                         const std::optional<at::Tensor>& rdmask, bool zero_output, bool save,
                                         int64_t impl, bool save_hprev, bool keep_out, bool bf16) {
  TORCH_CHECK(table.dim() == 2, "lstm kernel: table must be (V, 4u)");
  TORCH_CHECK(ids.dim() == 2 && ids.scalar_type() == at::kLong && ids.is_contiguous(),
              "lstm kernel: ids must be a contiguous int64 (B, T) tensor");
  const int64_t V = table.size(0), n = ids.numel();
  const int64_t* p = ids.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK_INDEX(p[i] >= 0 && p[i] < V, "embedding: id ", p[i], " is out of range [0, ", V, ")");
  }
  return forward_impl(table, &ids, ids.size(0), ids.size(1), R, h0, c0, mask, rdmask, zero_output, save, impl,
                      save_hprev, keep_out, nullptr, nullptr, bf16);
}

// The tensors a backward's BwdArgs point into, kept alive for the call: dout, c0, R and its transpose, and the
// state gradients, cloned from dh_T / dc_T because the time loop turns them into dh_0 / dc_0 in place.
struct BwdTensors {
  at::Tensor dout, c0, R, RT, dh, dc;
};

// Points `a` at dout (none: null), R, R^T, the saved gates and c, c0 and the state gradients.
BwdTensors bind_backward(BwdArgs& a, const at::Tensor* dout, const at::Tensor& dhT, const at::Tensor& dcT,
                         const at::Tensor& R, const at::Tensor& gates, const at::Tensor& cseq, const at::Tensor& c0) {
  BwdTensors t;
  if (dout != nullptr) t.dout = dout->contiguous();
  t.c0 = c0.contiguous();
  t.R = R.contiguous();
  t.RT = t.R.t().contiguous();
  t.dh = dhT.contiguous().clone();
  t.dc = dcT.contiguous().clone();
  a.dout = dout != nullptr ? t.dout.data_ptr<float>() : nullptr;
  a.R = t.R.data_ptr<float>();
  a.RT = t.RT.data_ptr<float>();
  a.gates = gates.data_ptr<float>();
  a.cseq = cseq.data_ptr<float>();
  a.c0 = t.c0.data_ptr<float>();
  a.dh = t.dh.data_ptr<float>();
  a.dc = t.dc.data_ptr<float>();
  return t;
}

// The shared backward; with `fused` (kGemm only) the weight gradients are computed per step in the time loop
// and dz is never materialised: returns {dx, dK, dR, db, dh0, dc0}; otherwise {dz, dh0, dc0}.
std::vector<at::Tensor> backward_impl(const at::Tensor& dout, const at::Tensor& dhT, const at::Tensor& dcT,
                                      const at::Tensor& R, const at::Tensor& gates, const at::Tensor& cseq,
                                      const at::Tensor& c0, const std::optional<at::Tensor>& mask,
                                      const std::optional<at::Tensor>& rdmask, bool zero_output, int64_t impl,
                                      const at::Tensor* hprev, const at::Tensor* x, const at::Tensor* kernel,
                                      bool weights_only_recurrent = false) {
  const int64_t B = gates.size(0), T = gates.size(1), u = R.size(0);
  TORCH_CHECK(gates.is_contiguous() && cseq.is_contiguous() && gates.size(2) == 4 * u,
              "lstm kernel: saved tensors do not match");
  // fused: dx, dK, dR, db step by step (no dz); weights_only_recurrent: dz out, dR and db step by step.
  const bool fused = x != nullptr || weights_only_recurrent;
  at::Tensor mask_keep, rdm_keep;
  BwdArgs a{make_common(B, T, u, mask, rdmask, zero_output, mask_keep, rdm_keep)};
  const BwdTensors kept = bind_backward(a, &dout, dhT, dcT, R, gates, cseq, c0);
  const at::Tensor& dh0 = kept.dh;
  const at::Tensor& dc0 = kept.dc;
  at::Tensor dz, x_c, KT, hprev_c, dx;
  if (weights_only_recurrent) {
    TORCH_CHECK(hprev->numel() == B * T * u, "lstm kernel: hprev does not match the saved tensors");
    hprev_c = hprev->contiguous();
    a.hprev = hprev_c.data_ptr<float>();
    dz = lstmtext_workspace::empty({B, T, 4 * u});
    a.dz = dz.data_ptr<float>();
  } else if (fused) {
    TORCH_CHECK(x->dim() == 3 && x->size(0) == B && x->size(1) == T && kernel->dim() == 2 &&
                    kernel->size(0) == x->size(2) && kernel->size(1) == 4 * u && hprev->numel() == B * T * u,
                "lstm kernel: x, kernel or hprev do not match the saved tensors");
    x_c = x->contiguous();
    KT = kernel->t().contiguous();
    hprev_c = hprev->contiguous();
    dx = at::empty_like(x_c);
    a.F = x_c.size(2);
    a.x = x_c.data_ptr<float>();
    a.KT = KT.data_ptr<float>();
    a.hprev = hprev_c.data_ptr<float>();
    a.dx = dx.data_ptr<float>();
    a.dz = nullptr;
  } else {
    dz = lstmtext_workspace::empty({B, T, 4 * u});
    a.dz = dz.data_ptr<float>();
  }
  const int64_t how = resolve_impl(impl, u);
  TORCH_CHECK(!fused || how == kGemm, "lstm kernel: fused weight gradients need the per-step GEMM strategy");
#ifdef LSTMTEXT_SIMD
  const int64_t nv = (u + W - 1) / W;
  std::vector<float> RTp;
  if (how == kVector) RTp = pad_rows(a.RT, 4 * u, u, 1, W * nv);
#endif
#ifdef LSTMTEXT_LANES
  std::vector<float> RTb;
  if (how == kLanes) RTb = lanes::broadcast_recurrent_t(a.R, u);
#endif
#ifdef LSTMTEXT_SIMD
  std::vector<float> RTpk;
  if (how == kGemm) {
    RTpk = lstmtext_gemm::pack_panels(a.RT, 4 * u, u, u);
    a.RTpk = RTpk.data();
  }
#endif
  std::vector<WeightGrads> partials(fused ? std::max<int64_t>(1, at::get_num_threads()) * 2 : 0);
  std::atomic<int64_t> next_partial{0};
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    if (how == kGemm) {
      WeightGrads* wg = nullptr;
      if (fused) {
        const int64_t slot = next_partial.fetch_add(1);
        TORCH_CHECK(slot < static_cast<int64_t>(partials.size()), "lstm kernel: more chunks than expected");
        wg = &partials[slot];
      }
      return backward_gemm(a, b0, b1, wg);
    }
#ifdef LSTMTEXT_SIMD
    if (how == kVector) return vector_by_width(nv, BackwardVector{a, RTp.data(), b0, b1});
#endif
#ifdef LSTMTEXT_LANES
    if (how == kLanes) return lanes::backward(a, RTb.data(), b0, b1);
#endif
    backward_rows(a, b0, b1);
  });
  if (!fused) return {dz, dh0, dc0};
  // Sum the threads' partials in row order: the result does not depend on which thread ran which rows.
  partials.resize(next_partial.load());
  std::sort(partials.begin(), partials.end(), [](const WeightGrads& p, const WeightGrads& q) { return p.b0 < q.b0; });
  auto opts = gates.options();
  auto dK = at::zeros({a.F, 4 * u}, opts), dR = at::zeros({u, 4 * u}, opts), db = at::zeros({4 * u}, opts);
  if (weights_only_recurrent) dK = dz;  // returned in dK's place: {dz, dR, db, dh0, dc0}
  for (const auto& p : partials) {
    float* k_out = dK.data_ptr<float>();
    float* r_out = dR.data_ptr<float>();
    float* b_out = db.data_ptr<float>();
    for (size_t i = 0; i < p.dK.size(); ++i) k_out[i] += p.dK[i];
    for (size_t i = 0; i < p.dR.size(); ++i) r_out[i] += p.dR[i];
    for (size_t i = 0; i < p.db.size(); ++i) b_out[i] += p.db[i];
  }
  if (weights_only_recurrent) return {dz, dR, db, dh0, dc0};
  return {dx, dK, dR, db, dh0, dc0};
}

std::vector<at::Tensor> lstm_backward(const at::Tensor& dout, const at::Tensor& dhT, const at::Tensor& dcT,
                                      const at::Tensor& R, const at::Tensor& gates, const at::Tensor& cseq,
                                      const at::Tensor& c0, const std::optional<at::Tensor>& mask,
                                      const std::optional<at::Tensor>& rdmask, bool zero_output, int64_t impl) {
  return backward_impl(dout, dhT, dcT, R, gates, cseq, c0, mask, rdmask, zero_output, impl, nullptr, nullptr,
                       nullptr);
}

std::vector<at::Tensor> lstm_backward_fused(const at::Tensor& dout, const at::Tensor& dhT, const at::Tensor& dcT,
                                            const at::Tensor& R, const at::Tensor& gates, const at::Tensor& cseq,
                                            const at::Tensor& hprev, const at::Tensor& c0, const at::Tensor& x,
                                            const at::Tensor& kernel, const std::optional<at::Tensor>& mask,
                                            const std::optional<at::Tensor>& rdmask, bool zero_output, int64_t impl) {
  return backward_impl(dout, dhT, dcT, R, gates, cseq, c0, mask, rdmask, zero_output, impl, &hprev, &x, &kernel);
}

// For inputs projected outside (an embedding table already multiplied by the kernel): {dz, dR, db, dh0, dc0}.
std::vector<at::Tensor> lstm_backward_dz(const at::Tensor& dout, const at::Tensor& dhT, const at::Tensor& dcT,
                                         const at::Tensor& R, const at::Tensor& gates, const at::Tensor& cseq,
                                         const at::Tensor& hprev, const at::Tensor& c0,
                                         const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& rdmask,
                                         bool zero_output, int64_t impl) {
  return backward_impl(dout, dhT, dcT, R, gates, cseq, c0, mask, rdmask, zero_output, impl, &hprev, nullptr, nullptr,
                       true);
}

// The backward of the recurrence over a projected embedding table (lstm_forward_ids saved without h_{t-1}),
// with the embedding backward fused in (kVector only; see IdsState): {d_table (V, 4u), dR, dh0, dc0}.
// Each thread adds into its own partial table gradient; the partials are summed in row order afterwards, so
// the result does not depend on which thread ran which rows.
std::vector<at::Tensor> lstm_backward_ids(const std::optional<at::Tensor>& dout, const at::Tensor& dhT,
                                          const at::Tensor& dcT,
                                          const at::Tensor& R, const at::Tensor& gates, const at::Tensor& cseq,
                                          const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& ids,
                                          int64_t vocab, const std::optional<at::Tensor>& mask,
                                          const std::optional<at::Tensor>& rdmask, bool zero_output, int64_t impl) {
  const int64_t B = gates.size(0), T = gates.size(1), u = R.size(0), G = 4 * u;
  TORCH_CHECK(gates.is_contiguous() && cseq.is_contiguous() && gates.size(2) == G,
              "lstm kernel: saved tensors do not match");
  TORCH_CHECK(ids.dim() == 2 && ids.size(0) == B && ids.size(1) == T && ids.scalar_type() == at::kLong &&
                  ids.is_contiguous(), "lstm kernel: ids must be a contiguous int64 (B, T) tensor");
  TORCH_CHECK(resolve_impl(impl, u) == kVector, "lstm kernel: the fused embedding backward needs kVector");
#ifdef LSTMTEXT_SIMD
  at::Tensor mask_keep, rdm_keep;
  BwdArgs a{make_common(B, T, u, mask, rdmask, zero_output, mask_keep, rdm_keep)};
  // No dout: only h_T was used (the last output), so the step outputs carry no gradient.
  const bool has_dout = dout.has_value() && dout->numel() > 0;
  TORCH_CHECK(!has_dout || dout->numel() == B * T * u, "lstm kernel: dout must be (B, T, u)");
  const BwdTensors kept = bind_backward(a, has_dout ? &*dout : nullptr, dhT, dcT, R, gates, cseq, c0);
  const at::Tensor& dh0 = kept.dh;
  const at::Tensor& dc0 = kept.dc;
  auto h0_c = h0.to(at::kFloat).contiguous();
  a.h0 = h0_c.data_ptr<float>();
  a.ids = ids.data_ptr<int64_t>();
  a.dz = nullptr;
  const int64_t nv = (u + W - 1) / W, P = W * nv;
  std::vector<float> RTp = pad_rows(a.RT, 4 * u, u, 1, P);
  struct Partial {
    int64_t b0 = 0;
    at::Tensor dproj;
    std::vector<float> dR;
  };
  std::vector<Partial> partials(std::max<int64_t>(1, at::get_num_threads()) * 2);
  std::atomic<int64_t> next_partial{0};
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    const int64_t slot = next_partial.fetch_add(1);
    TORCH_CHECK(slot < static_cast<int64_t>(partials.size()), "lstm kernel: more chunks than expected");
    Partial& p = partials[slot];
    p.b0 = b0;
    p.dproj = lstmtext_workspace::empty({vocab, G});
    p.dproj.zero_();
    p.dR.assign(u * 4 * P, 0.0f);
    std::vector<float> pend(kRowBlock * 4 * P, 0.0f);
    IdsState st{p.dproj.data_ptr<float>(), p.dR.data(), pend.data(), {}, b0};
    vector_by_width(nv, BackwardVector{a, RTp.data(), b0, b1, &st});
  });
  partials.resize(next_partial.load());
  std::sort(partials.begin(), partials.end(), [](const Partial& p, const Partial& q) { return p.b0 < q.b0; });
  auto dR = at::zeros({u, G}, gates.options());
  float* r_out = dR.data_ptr<float>();
  for (const auto& p : partials)
    for (int64_t l = 0; l < u; ++l)
      for (int64_t g = 0; g < 4; ++g)
        for (int64_t j = 0; j < u; ++j) r_out[l * G + g * u + j] += p.dR[(l * 4 + g) * P + j];
  at::Tensor dproj = partials.size() == 1 ? partials[0].dproj : lstmtext_workspace::empty({vocab, G});
  if (partials.size() > 1) {
    // The sum of the partials in row order, split over the threads by table rows.
    float* dst = dproj.data_ptr<float>();
    at::parallel_for(0, vocab, 256, [&](int64_t v0, int64_t v1) {
      const int64_t lo = v0 * G, hi = v1 * G;
      const float* p0 = partials[0].dproj.data_ptr<float>();
      std::memcpy(dst + lo, p0 + lo, (hi - lo) * sizeof(float));
      for (size_t i = 1; i < partials.size(); ++i) {
        const float* pi = partials[i].dproj.data_ptr<float>();
        for (int64_t e = lo; e < hi; ++e) dst[e] += pi[e];
      }
    });
  }
  return {dproj, dR, dh0, dc0};
#else
  TORCH_CHECK(false, "lstm kernel: the fused embedding backward needs a vector build");
  return {};
#endif
}

int64_t resolved_impl(int64_t units, int64_t impl) { return resolve_impl(impl, units); }

bool has_vector_impl() { return vector_available(); }

bool has_lanes_impl() { return lanes_available(); }

// Whether the build has the bfloat16 per-step products of kGemm inference (AVX512_BF16).
bool has_bf16_impl() {
#ifdef LSTMTEXT_BF16
  return true;
#else
  return false;
#endif
}

std::vector<std::string> strategy_names() { return {std::begin(kStrategyNames), std::end(kStrategyNames)}; }

bool strategy_available(int64_t impl) { return strategy_built(impl); }

}  // namespace

TORCH_LIBRARY(lstmtext_kernels, m) {
  m.def(
      "lstm_forward(Tensor xz, Tensor recurrent_kernel, Tensor h0, Tensor c0, Tensor? mask, Tensor? rdmask, "
      "bool zero_output, bool save, int impl=0, bool bf16=False) -> Tensor[]");
  m.def(
      "lstm_backward(Tensor dout, Tensor dhT, Tensor dcT, Tensor recurrent_kernel, Tensor gates, Tensor cseq, "
      "Tensor c0, Tensor? mask, Tensor? rdmask, bool zero_output, int impl=0) -> Tensor[]");
  m.def(
      "lstm_backward_fused(Tensor dout, Tensor dhT, Tensor dcT, Tensor recurrent_kernel, Tensor gates, Tensor cseq, "
      "Tensor hprev, Tensor c0, Tensor x, Tensor kernel, Tensor? mask, Tensor? rdmask, bool zero_output, "
      "int impl=0) -> Tensor[]");
  m.def(
      "lstm_forward_x(Tensor x, Tensor kernel, Tensor? bias, Tensor recurrent_kernel, Tensor h0, Tensor c0, "
      "Tensor? mask, Tensor? rdmask, bool zero_output, bool save, int impl=0, bool bf16=False) -> Tensor[]");
  m.def(
      "lstm_forward_ids(Tensor table, Tensor ids, Tensor recurrent_kernel, Tensor h0, Tensor c0, Tensor? mask, "
      "Tensor? rdmask, bool zero_output, bool save, int impl=0, bool save_hprev=True, bool keep_out=True, "
      "bool bf16=False) -> Tensor[]");
  m.def(
      "lstm_backward_ids(Tensor? dout, Tensor dhT, Tensor dcT, Tensor recurrent_kernel, Tensor gates, Tensor cseq, "
      "Tensor h0, Tensor c0, Tensor ids, int vocab, Tensor? mask, Tensor? rdmask, bool zero_output, int impl=0) "
      "-> Tensor[]");
  m.def(
      "lstm_backward_dz(Tensor dout, Tensor dhT, Tensor dcT, Tensor recurrent_kernel, Tensor gates, Tensor cseq, "
      "Tensor hprev, Tensor c0, Tensor? mask, Tensor? rdmask, bool zero_output, int impl=0) -> Tensor[]");
  m.def("has_vector_impl() -> bool", &has_vector_impl);
  m.def("has_lanes_impl() -> bool", &has_lanes_impl);
  m.def("has_bf16_impl() -> bool", &has_bf16_impl);
  m.def("resolved_impl(int units, int impl) -> int", &resolved_impl);
  m.def("strategy_names() -> str[]", &strategy_names);
  m.def("strategy_available(int impl) -> bool", &strategy_available);
}

TORCH_LIBRARY_IMPL(lstmtext_kernels, CPU, m) {
  m.impl("lstm_forward", &lstm_forward);
  m.impl("lstm_forward_x", &lstm_forward_x);
  m.impl("lstm_forward_ids", &lstm_forward_ids);
  m.impl("lstm_backward", &lstm_backward);
  m.impl("lstm_backward_fused", &lstm_backward_fused);
  m.impl("lstm_backward_dz", &lstm_backward_dz);
  m.impl("lstm_backward_ids", &lstm_backward_ids);
}
