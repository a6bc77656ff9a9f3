// CPU float32 kernels for the parts of a training step around the LSTM: embedding lookup and its gradient,
// inverted dropout with a counter-based random mask, Keras's Adam update in one pass, and the softmax
// cross-entropy of a (rows, classes) logits buffer with its gradient, each in one pass over the buffer.
//
// Each replaces a chain of generic torch ops that was measured to cost more than the arithmetic needs
// (bench/RESULTS.md): F.embedding's dense backward sorts the ids; bernoulli_ draws one Mersenne-Twister
// number per element; the foreach Adam makes ~10 passes over every parameter and allocates temporaries.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "simd.h"

namespace {

// ---- embedding ----------------------------------------------------------------------------------------

void check_ids(const at::Tensor& ids, int64_t vocab) {
  TORCH_CHECK(ids.scalar_type() == at::kLong && ids.is_contiguous(), "embedding: ids must be contiguous int64");
  const int64_t* p = ids.data_ptr<int64_t>();
  const int64_t n = ids.numel();
  int64_t bad = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] < 0 || p[i] >= vocab) {
      bad = p[i];
      break;
    }
  }
  TORCH_CHECK_INDEX(bad == -1, "embedding: id ", bad, " is out of range [0, ", vocab, ")");
}

// (V, E) table, ids of any shape -> (*ids.shape, E); rows are copied in parallel.
at::Tensor embedding_forward(const at::Tensor& weight, const at::Tensor& ids) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == at::kFloat && weight.is_contiguous(),
              "embedding: weight must be a contiguous float32 (V, E) tensor");
  const int64_t V = weight.size(0), E = weight.size(1);
  auto idc = ids.contiguous();
  check_ids(idc, V);
  std::vector<int64_t> shape(idc.sizes().begin(), idc.sizes().end());
  shape.push_back(E);
  auto out = at::empty(shape, weight.options());
  const float* w = weight.data_ptr<float>();
  const int64_t* id = idc.data_ptr<int64_t>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, idc.numel(), std::max<int64_t>(1, 16384 / std::max<int64_t>(E, 1)), [&](int64_t a, int64_t b) {
    for (int64_t n = a; n < b; ++n) std::memcpy(o + n * E, w + id[n] * E, E * sizeof(float));
  });
  return out;
}

// dW[v] = sum of grad rows n with ids[n] == v, summed in increasing n (deterministic, whatever the threads).
// Rows are grouped by id with a counting sort; threads take contiguous vocabulary ranges of about equal
// numbers of occurrences, so a frequent id does not serialise the work.
at::Tensor embedding_backward(const at::Tensor& grad, const at::Tensor& ids, int64_t vocab) {
  auto g = grad.contiguous();
  auto idc = ids.contiguous();
  TORCH_CHECK(g.scalar_type() == at::kFloat, "embedding backward: grad must be float32");
  const int64_t N = idc.numel();
  const int64_t E = N == 0 ? g.size(-1) : g.numel() / N;
  auto out = at::empty({vocab, E}, g.options());
  const int64_t* id = idc.data_ptr<int64_t>();
  std::vector<int64_t> start(vocab + 1, 0), order(N);
  for (int64_t n = 0; n < N; ++n) ++start[id[n] + 1];
  for (int64_t v = 0; v < vocab; ++v) start[v + 1] += start[v];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t n = 0; n < N; ++n) order[fill[id[n]]++] = n;
  }
  const float* gp = g.data_ptr<float>();
  float* op = out.data_ptr<float>();
  // Work of a vocabulary range ~ its occurrences + its rows (each row is written once).
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), vocab));
  std::vector<int64_t> cut(threads + 1, vocab);
  cut[0] = 0;
  const double total = static_cast<double>(N + vocab);
  for (int64_t v = 0, k = 1; v < vocab && k < threads; ++v) {
    if (static_cast<double>(start[v + 1] + v + 1) >= total * k / threads) cut[k++] = v + 1;
  }
  at::parallel_for(0, threads, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t v = cut[t]; v < cut[t + 1]; ++v) {
        float* dst = op + v * E;
        const int64_t s = start[v], e = start[v + 1];
        if (s == e) {
          std::memset(dst, 0, E * sizeof(float));
          continue;
        }
        std::memcpy(dst, gp + order[s] * E, E * sizeof(float));
        for (int64_t k = s + 1; k < e; ++k) {
          const float* src = gp + order[k] * E;
          for (int64_t j = 0; j < E; ++j) dst[j] += src[j];
        }
      }
    }
  });
  return out;
}

// ---- narrow table projection ------------------------------------------------------------------------
// proj = table @ kernel + bias, (V, F) x (F, G) -> (V, G), and its three gradients, for narrow tables (the
// tutorial's 5,000 x 15 projected to 40 gate columns). As torch ops these are four products and reductions,
// each its own parallel region: with the passive OpenMP threads of tune_cpu_runtime() every region pays a
// thread wake-up of about 50 us, more than the arithmetic of a 5,000-row table. Here the forward and the
// backward are one pass over the rows each, split over the threads by rows, the backward keeping per-chunk
// kernel and bias partials that are summed in chunk order (the same bits whatever the thread count).

// R outputs at once: o[r * ors + j] = init[j] (zeros if null) + sum_k a[r * ars + k * lda] * M[k * ldm + j] for
// j < n. The R independent sums hide the latency of each one's chain of FMAs over k; the vector code keeps
// R x (up to four) accumulators in registers over k (fully unrolled loops: as a 2-D array with loops left
// rolled, GCC stored every accumulator to the stack at each k, at a third of addmm's speed).
#ifdef LSTMTEXT_SIMD
template <int NV, int R>
inline void combine_block(float* o, int64_t ors, const float* init, const float* a, int64_t ars, int64_t lda,
                          int64_t K, const float* M, int64_t ldm, lstmtext_simd::Mask tail) {
  using namespace lstmtext_simd;
  V acc[R][NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    const V i = init == nullptr ? zero() : (v < NV - 1 ? loadu(init + W * v) : load_first(tail, init + W * v));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r][v] = i;
  }
  for (int64_t k = 0; k < K; ++k) {
    const float* mk = M + k * ldm;
    V m[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) m[v] = v < NV - 1 ? loadu(mk + W * v) : load_first(tail, mk + W * v);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const V x = set1(a[r * ars + k * lda]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = fmadd(x, m[v], acc[r][v]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) storeu(o + r * ors + W * v, acc[r][v]);
    store_first(o + r * ors + W * (NV - 1), tail, acc[r][NV - 1]);
  }
}

template <int R>
inline void combine_cols(float* o, int64_t ors, const float* init, const float* a, int64_t ars, int64_t lda, int64_t K,
                         const float* M, int64_t ldm, int64_t n) {
  using namespace lstmtext_simd;
  for (int64_t j0 = 0; j0 < n; j0 += 4 * W) {
    const int64_t left = std::min<int64_t>(4 * W, n - j0);
    const int nv = static_cast<int>((left + W - 1) / W);
    const Mask tail = first_lanes(left - W * (nv - 1));
    const float* in = init != nullptr ? init + j0 : nullptr;
    switch (nv) {
      case 1: combine_block<1, R>(o + j0, ors, in, a, ars, lda, K, M + j0, ldm, tail); break;
      case 2: combine_block<2, R>(o + j0, ors, in, a, ars, lda, K, M + j0, ldm, tail); break;
      case 3: combine_block<3, R>(o + j0, ors, in, a, ars, lda, K, M + j0, ldm, tail); break;
      default: combine_block<4, R>(o + j0, ors, in, a, ars, lda, K, M + j0, ldm, tail); break;
    }
  }
}
#endif

// `outputs` outputs as above, four at a time.
inline void combine(int64_t outputs, float* o, int64_t ors, const float* init, const float* a, int64_t ars,
                    int64_t lda, int64_t K, const float* M, int64_t ldm, int64_t n) {
  int64_t r = 0;
#ifdef LSTMTEXT_SIMD
  for (; r + 4 <= outputs; r += 4) combine_cols<4>(o + r * ors, ors, init, a + r * ars, ars, lda, K, M, ldm, n);
  for (; r < outputs; ++r) combine_cols<1>(o + r * ors, ors, init, a + r * ars, ars, lda, K, M, ldm, n);
#else
  for (; r < outputs; ++r) {
    float* orow = o + r * ors;
    for (int64_t j = 0; j < n; ++j) orow[j] = init != nullptr ? init[j] : 0.0f;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < n; ++j) orow[j] += a[r * ars + k * lda] * M[k * ldm + j];
  }
#endif
}

at::Tensor table_projection(const at::Tensor& table, const at::Tensor& kernel, const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(table.dim() == 2 && kernel.dim() == 2 && table.size(1) == kernel.size(0) &&
                  table.scalar_type() == at::kFloat && kernel.scalar_type() == at::kFloat,
              "table projection: expected float32 table (V, F) and kernel (F, G), got ", table.sizes(), " and ",
              kernel.sizes());
  const int64_t V = table.size(0), F = table.size(1), G = kernel.size(1);
  auto t = table.contiguous();
  auto k = kernel.contiguous();
  at::Tensor b;
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->numel() == G && bias->scalar_type() == at::kFloat, "table projection: bias must be (", G, ")");
    b = bias->contiguous();
  }
  auto out = at::empty({V, G}, t.options());
  const float* tp = t.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  at::parallel_for(0, V, std::max<int64_t>(1, 4096 / std::max<int64_t>(F * G / 64, 1)), [&](int64_t v0, int64_t v1) {
    combine(v1 - v0, op + v0 * G, G, bp, tp + v0 * F, F, 1, F, kp, G, G);  // rows v: bias + table[v] @ kernel
  });
  return out;
}

// (d table (V, F), d kernel (F, G), d bias (G)) of proj = table @ kernel + bias; an empty tensor for each
// gradient not asked for.
std::vector<at::Tensor> table_projection_backward(const at::Tensor& dproj, const at::Tensor& table,
                                                  const at::Tensor& kernel, bool need_table, bool need_kernel,
                                                  bool need_bias) {
  TORCH_CHECK(table.dim() == 2 && kernel.dim() == 2 && dproj.dim() == 2 && table.size(1) == kernel.size(0) &&
                  dproj.size(0) == table.size(0) && dproj.size(1) == kernel.size(1) &&
                  dproj.scalar_type() == at::kFloat && table.scalar_type() == at::kFloat &&
                  kernel.scalar_type() == at::kFloat,
              "table projection backward: expected float32 d proj (V, G), table (V, F), kernel (F, G), got ",
              dproj.sizes(), ", ", table.sizes(), ", ", kernel.sizes());
  const int64_t V = table.size(0), F = table.size(1), G = kernel.size(1);
  auto d = dproj.contiguous();
  auto t = table.contiguous();
  auto kt = kernel.t().contiguous();  // (G, F): d table row = sum_g d[g] * kernel[:, g], contiguous over F
  at::Tensor dtable = at::empty({need_table ? V : 0, F}, t.options());
  const float* dp = d.data_ptr<float>();
  const float* tp = t.data_ptr<float>();
  const float* ktp = kt.data_ptr<float>();
  float* dtp = need_table ? dtable.data_ptr<float>() : nullptr;
  // Chunks of rows, each with its partial d kernel and d bias, summed below in chunk order.
  const int64_t chunk = std::max<int64_t>(64, (V + 15) / 16);
  const int64_t chunks = (V + chunk - 1) / chunk;
  const int64_t part = (need_kernel ? F * G : 0) + (need_bias ? G : 0);
  std::vector<float> partials(chunks * part, 0.0f);
  const float one = 1.0f;
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      float* dk = partials.data() + c * part;
      float* db = dk + (need_kernel ? F * G : 0);
      const int64_t v0 = c * chunk, rows = std::min(V, v0 + chunk) - v0;
      const float* d0 = dp + v0 * G;
      // d table[v] = d[v] @ kernel^T; d kernel[f] = sum_v table[v, f] * d[v] over the chunk's rows (column f
      // of the table: stride F); d bias = sum_v d[v].
      if (need_table) combine(rows, dtp + v0 * F, F, nullptr, d0, G, 1, G, ktp, F, F);
      if (need_kernel) combine(F, dk, G, nullptr, tp + v0 * F, 1, F, rows, d0, G, G);
      if (need_bias) combine(1, db, G, nullptr, &one, 0, 0, rows, d0, G, G);
    }
  });
  at::Tensor dkernel = at::zeros({need_kernel ? F : 0, G}, t.options());
  at::Tensor dbias = at::zeros({need_bias ? G : 0}, t.options());
  for (int64_t c = 0; c < chunks; ++c) {
    const float* src = partials.data() + c * part;
    if (need_kernel) {
      float* dst = dkernel.data_ptr<float>();
      for (int64_t i = 0; i < F * G; ++i) dst[i] += src[i];
      src += F * G;
    }
    if (need_bias) {
      float* dst = dbias.data_ptr<float>();
      for (int64_t g = 0; g < G; ++g) dst[g] += src[g];
    }
  }
  return {dtable, dkernel, dbias};
}

// ---- dropout ------------------------------------------------------------------------------------------

// A keyed 32-bit integer hash (two rounds of the "lowbias32" mixer) of the element index: a counter-based
// generator, so the backward recomputes the mask from (seed, index) instead of storing it, and every thread
// draws its own elements without shared state. Integer-only, so the loops vectorise (16 lanes on AVX-512).
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

inline bool keep_bit(uint32_t i, uint32_t k0, uint32_t k1, uint32_t threshold) {
  return (mix32(mix32(i ^ k0) + k1) >> 8) >= threshold;  // 24-bit uniform >= rate * 2^24
}

// out = keep ? x / keep_prob : 0 (Keras's backend.random.dropout formula), keep with probability 1 - rate.
// Used for the forward (x = inputs) and the backward (x = output gradient) alike.
at::Tensor dropout_apply(const at::Tensor& x, double rate, int64_t seed) {
  TORCH_CHECK(x.scalar_type() == at::kFloat, "dropout: float32 input expected");
  TORCH_CHECK(x.numel() < (int64_t(1) << 32), "dropout: at most 2^32 elements");
  auto xc = x.contiguous();
  auto out = at::empty_like(xc);
  const float* xp = xc.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const float keep_prob = static_cast<float>(1.0 - rate);
  const uint32_t threshold = static_cast<uint32_t>(std::llround(rate * 16777216.0));
  const uint64_t s = static_cast<uint64_t>(seed);
  const uint32_t k0 = mix32(static_cast<uint32_t>(s)), k1 = mix32(static_cast<uint32_t>(s >> 32) ^ 0x9e3779b9U);
  at::parallel_for(0, xc.numel(), 32768, [&](int64_t a, int64_t b) {
    // A 32-bit counter and one select per element: this form vectorises (checked with -fopt-info-vec).
    const uint32_t base = static_cast<uint32_t>(a), c0 = k0, c1 = k1, thr = threshold;  // locals: no aliasing
    const float kp = keep_prob;
    const float* __restrict src = xp + a;
    float* __restrict dst = op + a;
    for (int64_t j = 0; j < b - a; ++j) {
      dst[j] = keep_bit(base + static_cast<uint32_t>(j), c0, c1, thr) ? src[j] / kp : 0.0f;
    }
  });
  return out;
}

// ---- Adam ---------------------------------------------------------------------------------------------

// One Keras Adam step on one parameter, in place, in the order of Keras's torch backend (torch_adam.py):
// m = m*b1 + (1-b1)*g; v = v*b2 + (1-b2)*g*g; p -= (m*alpha) / (sqrt(v) + eps).
void adam_update(at::Tensor param, const at::Tensor& grad, at::Tensor m, at::Tensor v, double alpha, double beta_1,
                 double beta_2, double epsilon) {
  TORCH_CHECK(param.scalar_type() == at::kFloat && grad.scalar_type() == at::kFloat && m.scalar_type() == at::kFloat &&
                  v.scalar_type() == at::kFloat,
              "adam: float32 tensors expected");
  TORCH_CHECK(param.is_contiguous() && m.is_contiguous() && v.is_contiguous(), "adam: contiguous state expected");
  TORCH_CHECK(grad.numel() == param.numel() && m.numel() == param.numel() && v.numel() == param.numel(),
              "adam: size mismatch");
  auto g = grad.contiguous();
  float* p = param.data_ptr<float>();
  float* mp = m.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  const float b1 = static_cast<float>(beta_1), b2 = static_cast<float>(beta_2);
  const float c1 = static_cast<float>(1.0 - beta_1), c2 = static_cast<float>(1.0 - beta_2);
  const float a = static_cast<float>(alpha), eps = static_cast<float>(epsilon);
  at::parallel_for(0, param.numel(), 16384, [&](int64_t s, int64_t e) {
    // Restrict-qualified locals (not the captured references) let the loop vectorise.
    float* __restrict pw = p + s;
    float* __restrict mw = mp + s;
    float* __restrict vw = vp + s;
    const float* __restrict gr = gp + s;
    const float lb1 = b1, lb2 = b2, lc1 = c1, lc2 = c2, la = a, le = eps;
    for (int64_t i = 0; i < e - s; ++i) {
      const float gi = gr[i];
      const float mi = mw[i] * lb1 + lc1 * gi;
      const float vi = vw[i] * lb2 + lc2 * (gi * gi);
      mw[i] = mi;
      vw[i] = vi;
      pw[i] = pw[i] - (mi * la) / (std::sqrt(vi) + le);
    }
  });
}

// ---- softmax cross-entropy ------------------------------------------------------------------------------
// torch's log_softmax (read, write), the gather, and in the backward exp_, mul_ and the one-hot subtraction
// make five passes over the (N, C) buffer, each above the caches for a language model's softmax (36 MB at
// N 4480, C 2002). Here the forward only reads the logits (a row is read twice, the second time from L1) and
// keeps one log-sum-exp per row; the backward turns the logits into the gradient in one read-write pass.

void check_softmax_args(const at::Tensor& logits, const at::Tensor& target) {
  TORCH_CHECK(logits.dim() == 2 && logits.scalar_type() == at::kFloat && logits.is_contiguous(),
              "softmax_nll: logits must be a contiguous float32 (N, C) tensor");
  TORCH_CHECK(target.dim() == 1 && target.scalar_type() == at::kLong && target.is_contiguous() &&
                  target.size(0) == logits.size(0),
              "softmax_nll: target must be a contiguous int64 (N,) tensor");
  const int64_t C = logits.size(1);
  const int64_t* t = target.data_ptr<int64_t>();
  for (int64_t i = 0; i < target.size(0); ++i) {
    TORCH_CHECK_INDEX(t[i] >= 0 && t[i] < C, "softmax_nll: target ", t[i], " is out of range [0, ", C, ")");
  }
}

// log(sum_j exp(x[j])) of one row, computed as max + log(sum exp(x - max)).
float row_logsumexp(const float* x, int64_t C) {
  int64_t j = 0;
  float m = -INFINITY;
#ifdef LSTMTEXT_SIMD
  namespace s = lstmtext_simd;
  float lanes[s::W];
  if (C >= s::W) {
    s::V vm = s::loadu(x);
    for (j = s::W; j + s::W <= C; j += s::W) vm = s::max(vm, s::loadu(x + j));
    s::storeu(lanes, vm);
    for (int k = 0; k < s::W; ++k) m = std::max(m, lanes[k]);
  } else {
    j = 0;
  }
#endif
  for (; j < C; ++j) m = std::max(m, x[j]);
  if (std::isinf(m)) return m;  // all -inf: the row has no mass; +inf: so is its log-sum-exp
  double sum = 0.0;
  j = 0;
#ifdef LSTMTEXT_SIMD
  {
    const s::V vmax = s::set1(m);
    s::V acc = s::zero();
    for (; j + s::W <= C; j += s::W) acc = s::add(acc, s::exp_v(s::sub(s::loadu(x + j), vmax)));
    s::storeu(lanes, acc);
    for (int k = 0; k < s::W; ++k) sum += lanes[k];
  }
#endif
  for (; j < C; ++j) sum += std::exp(x[j] - m);
  return m + static_cast<float>(std::log(sum));
}

// (N, C) logits, (N,) targets -> [nll (N,), lse (N,)]; the logits are not written.
std::vector<at::Tensor> softmax_nll_forward(const at::Tensor& logits, const at::Tensor& target) {
  check_softmax_args(logits, target);
  const int64_t N = logits.size(0), C = logits.size(1);
  auto nll = at::empty({N}, logits.options());
  auto lse = at::empty({N}, logits.options());
  const float* x = logits.data_ptr<float>();
  const int64_t* t = target.data_ptr<int64_t>();
  float* pn = nll.data_ptr<float>();
  float* pl = lse.data_ptr<float>();
  at::parallel_for(0, N, std::max<int64_t>(1, 32768 / std::max<int64_t>(C, 1)), [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) {
      const float* row = x + i * C;
      pl[i] = row_logsumexp(row, C);
      pn[i] = pl[i] - row[t[i]];
    }
  });
  return {nll, lse};
}

// In place: logits[i, j] <- (exp(logits[i, j] - lse[i]) - [j == target[i]]) * grad[i]. Returns logits.
at::Tensor softmax_nll_backward_(at::Tensor logits, const at::Tensor& lse, const at::Tensor& grad,
                                 const at::Tensor& target) {
  check_softmax_args(logits, target);
  const int64_t N = logits.size(0), C = logits.size(1);
  TORCH_CHECK(lse.scalar_type() == at::kFloat && lse.is_contiguous() && lse.numel() == N,
              "softmax_nll: lse must be a contiguous float32 (N,) tensor");
  auto g = grad.contiguous();
  TORCH_CHECK(g.scalar_type() == at::kFloat && g.numel() == N, "softmax_nll: grad must be a float32 (N,) tensor");
  float* x = logits.data_ptr<float>();
  const float* pl = lse.data_ptr<float>();
  const float* pg = g.data_ptr<float>();
  const int64_t* t = target.data_ptr<int64_t>();
  at::parallel_for(0, N, std::max<int64_t>(1, 32768 / std::max<int64_t>(C, 1)), [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) {
      float* row = x + i * C;
      const float l = pl[i], gi = pg[i];
      int64_t j = 0;
#ifdef LSTMTEXT_SIMD
      namespace s = lstmtext_simd;
      const s::V vl = s::set1(l), vg = s::set1(gi);
      for (; j + s::W <= C; j += s::W) s::storeu(row + j, s::mul(s::exp_v(s::sub(s::loadu(row + j), vl)), vg));
#endif
      for (; j < C; ++j) row[j] = std::exp(row[j] - l) * gi;
      row[t[i]] -= gi;
    }
  });
  return logits;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(lstmtext_kernels, m) {
  m.def("embedding_forward(Tensor weight, Tensor ids) -> Tensor");
  m.def("embedding_backward(Tensor grad, Tensor ids, int vocab) -> Tensor");
  m.def("table_projection(Tensor table, Tensor kernel, Tensor? bias) -> Tensor");
  m.def(
      "table_projection_backward(Tensor dproj, Tensor table, Tensor kernel, bool need_table, bool need_kernel, "
      "bool need_bias) -> Tensor[]");
  m.def("dropout_apply(Tensor x, float rate, int seed) -> Tensor");
  m.def(
      "adam_update(Tensor(a!) param, Tensor grad, Tensor(b!) m, Tensor(c!) v, float alpha, float beta_1, "
      "float beta_2, float epsilon) -> ()");
  m.def("softmax_nll_forward(Tensor logits, Tensor target) -> Tensor[]");
  m.def("softmax_nll_backward_(Tensor(a!) logits, Tensor lse, Tensor grad, Tensor target) -> Tensor(a!)");
}

TORCH_LIBRARY_IMPL(lstmtext_kernels, CPU, m) {
  m.impl("embedding_forward", &embedding_forward);
  m.impl("embedding_backward", &embedding_backward);
  m.impl("table_projection", &table_projection);
  m.impl("table_projection_backward", &table_projection_backward);
  m.impl("dropout_apply", &dropout_apply);
  m.impl("adam_update", &adam_update);
  m.impl("softmax_nll_forward", &softmax_nll_forward);
  m.impl("softmax_nll_backward_", &softmax_nll_backward_);
}
