// Fused Keras-LSTM recurrence for CPU float32, forward and backward.
//
// The input projection xz = x @ kernel + bias (B, T, 4u) and every weight gradient are big GEMMs done
// outside (torch ops); this file only runs the part that is sequential in time: the recurrent product
// h_{t-1} @ recurrent_kernel, the gates and the state update, with Keras masking and recurrent dropout.
//
// Rows of the batch are independent, so the batch is split across threads and each thread runs the whole
// time loop on its rows with no per-step synchronisation. Two recurrent-product strategies:
//   * small u: per row, z[0:4u] += h[l] * R[l, 0:4u], a loop the compiler vectorises over 4u;
//   * large u: per thread and step, one small GEMM (rows x u) @ (u x 4u) through at::mm_out, run
//     single-threaded inside the thread's own slice.
// Masked steps (mask false) carry h and c and repeat the previous output (zeros before the first real
// step, or always zeros with zero_output_for_mask), exactly as keras/src/backend/torch/rnn.py.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// ---- vectorisable activations (Cephes single-precision polynomials, ~1 ulp on the used range) ----------

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

// Gates z[0:4u] (pre-activation, order i f c o) -> activated in place; returns nothing.
inline void activate_gates(float* __restrict z, int64_t u) {
  for (int64_t j = 0; j < 2 * u; ++j) z[j] = sigmoid_approx(z[j]);
  for (int64_t j = 2 * u; j < 3 * u; ++j) z[j] = tanh_approx(z[j]);
  for (int64_t j = 3 * u; j < 4 * u; ++j) z[j] = sigmoid_approx(z[j]);
}

struct Shapes {
  int64_t B, T, u, G;
};

// Recurrent dropout: none, one (B, u) mask shared by the gates, or one per gate (B, 4, u).
enum class DropMode { kNone = 0, kShared = 1, kPerGate = 2 };

DropMode drop_mode(const std::optional<at::Tensor>& rdm) {
  if (!rdm.has_value() || !rdm->defined()) return DropMode::kNone;
  return rdm->dim() == 2 ? DropMode::kShared : DropMode::kPerGate;
}

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

// Below this many units the per-row loop beats a per-step GEMM.
constexpr int64_t kRowLoopMaxUnits = 48;

void check_inputs(const at::Tensor& xz, const at::Tensor& R, const at::Tensor& h0, const at::Tensor& c0) {
  TORCH_CHECK(xz.device().is_cpu() && xz.scalar_type() == at::kFloat && xz.dim() == 3 && xz.is_contiguous(),
              "lstm kernel: xz must be a contiguous CPU float32 (B, T, 4u) tensor");
  TORCH_CHECK(R.dim() == 2 && R.size(1) == 4 * R.size(0) && R.is_contiguous() && R.scalar_type() == at::kFloat,
              "lstm kernel: recurrent_kernel must be a contiguous float32 (u, 4u) tensor");
  TORCH_CHECK(xz.size(2) == R.size(1), "lstm kernel: xz last dim must be 4u");
  TORCH_CHECK(h0.is_contiguous() && c0.is_contiguous() && h0.size(0) == xz.size(0) && h0.size(1) == R.size(0) &&
                  c0.sizes() == h0.sizes(),
              "lstm kernel: h0 and c0 must be contiguous (B, u)");
}

std::vector<at::Tensor> lstm_forward(const at::Tensor& xz, const at::Tensor& R, const at::Tensor& h0,
                                     const at::Tensor& c0, const std::optional<at::Tensor>& mask,
                                     const std::optional<at::Tensor>& rdmask, bool zero_output, bool save) {
  check_inputs(xz, R, h0, c0);
  const Shapes s{xz.size(0), xz.size(1), R.size(0), R.size(1)};
  const DropMode mode = drop_mode(rdmask);
  auto out = at::empty({s.B, s.T, s.u}, xz.options());
  auto hT = h0.clone();
  auto cT = c0.clone();
  // Without autograd nothing is kept for the backward (empty tensors, not undefined ones, cross to Python).
  at::Tensor gates = at::empty({0}, xz.options()), cseq = gates, hprev = gates;
  if (save) {
    gates = at::empty({s.B, s.T, s.G}, xz.options());
    cseq = at::empty({s.B, s.T, s.u}, xz.options());
    hprev = at::empty({s.B, s.T, s.u}, xz.options());
  }
  const bool* mp = nullptr;
  at::Tensor mask_c;
  if (mask.has_value() && mask->defined()) {
    mask_c = mask->to(at::kBool).contiguous();
    mp = mask_c.data_ptr<bool>();
  }
  at::Tensor rdm_c;
  const float* rp = nullptr;
  if (mode != DropMode::kNone) {
    rdm_c = rdmask->contiguous();
    rp = rdm_c.data_ptr<float>();
  }
  const int64_t rdm_stride = mode == DropMode::kPerGate ? s.G : s.u;
  const float* xzp = xz.data_ptr<float>();
  const float* Rp = R.data_ptr<float>();
  float* outp = out.data_ptr<float>();
  float* hp = hT.data_ptr<float>();
  float* cp = cT.data_ptr<float>();
  float* gp = save ? gates.data_ptr<float>() : nullptr;
  float* csp = save ? cseq.data_ptr<float>() : nullptr;
  float* hpp = save ? hprev.data_ptr<float>() : nullptr;
  const bool row_loop = s.u <= kRowLoopMaxUnits;

  at::parallel_for(0, s.B, 1, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    // Large u: the whole slice's pre-activations for one step, filled by one GEMM.
    std::vector<float> zall(row_loop ? s.G : rows * s.G);
    std::vector<float> hm(row_loop ? s.u : rows * (mode == DropMode::kPerGate ? s.G : s.u));
    std::vector<float> zrow(s.G);
    at::Tensor zt, hmt, Rt;
    if (!row_loop) {
      zt = at::from_blob(zall.data(), {rows, s.G}, at::kFloat);
      Rt = at::from_blob(const_cast<float*>(Rp), {s.u, s.G}, at::kFloat);
    }
    for (int64_t t = 0; t < s.T; ++t) {
      if (!row_loop) {
        // zall = h_{t-1} (* mask) @ R for the slice, one single-threaded GEMM (we are inside parallel_for).
        if (mode == DropMode::kPerGate) {
          std::fill(zall.begin(), zall.end(), 0.0f);
          for (int64_t k = 0; k < 4; ++k) {
            for (int64_t b = 0; b < rows; ++b) {
              const float* h = hp + (b0 + b) * s.u;
              const float* m = rp + (b0 + b) * rdm_stride + k * s.u;
              for (int64_t l = 0; l < s.u; ++l) hm[b * s.u + l] = h[l] * m[l];
            }
            auto hk = at::from_blob(hm.data(), {rows, s.u}, at::kFloat);
            auto zk = zt.narrow(1, k * s.u, s.u);
            zk.addmm_(hk, Rt.narrow(1, k * s.u, s.u));
          }
        } else if (mode == DropMode::kShared) {
          for (int64_t b = 0; b < rows; ++b) {
            const float* h = hp + (b0 + b) * s.u;
            const float* m = rp + (b0 + b) * rdm_stride;
            for (int64_t l = 0; l < s.u; ++l) hm[b * s.u + l] = h[l] * m[l];
          }
          at::mm_out(zt, at::from_blob(hm.data(), {rows, s.u}, at::kFloat), Rt);
        } else {
          at::mm_out(zt, at::from_blob(hp + b0 * s.u, {rows, s.u}, at::kFloat), Rt);
        }
      }
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t bt = b * s.T + t;
        float* h = hp + b * s.u;
        float* c = cp + b * s.u;
        float* o_out = outp + bt * s.u;
        if (save) {
          std::memcpy(hpp + bt * s.u, h, s.u * sizeof(float));
        }
        if (mp != nullptr && !mp[bt]) {
          if (zero_output || t == 0) {
            std::fill(o_out, o_out + s.u, 0.0f);
          } else {
            std::memcpy(o_out, o_out - s.u, s.u * sizeof(float));
          }
          if (save) {
            std::memcpy(csp + bt * s.u, c, s.u * sizeof(float));
          }
          continue;
        }
        float* z = row_loop ? zrow.data() : zall.data() + (b - b0) * s.G;
        const float* xrow = xzp + bt * s.G;
        if (row_loop) {
          std::memcpy(z, xrow, s.G * sizeof(float));
          recurrent_row(z, h, Rp, rp == nullptr ? nullptr : rp + b * rdm_stride, mode, s.u, hm.data());
        } else {
          for (int64_t j = 0; j < s.G; ++j) z[j] += xrow[j];
        }
        activate_gates(z, s.u);
        const float* gi = z;
        const float* gf = z + s.u;
        const float* gg = z + 2 * s.u;
        const float* go = z + 3 * s.u;
        for (int64_t j = 0; j < s.u; ++j) {
          const float cn = gf[j] * c[j] + gi[j] * gg[j];
          c[j] = cn;
          const float hn = go[j] * tanh_approx(cn);
          h[j] = hn;
          o_out[j] = hn;
        }
        if (save) {
          std::memcpy(gp + bt * s.G, z, s.G * sizeof(float));
          std::memcpy(csp + bt * s.u, c, s.u * sizeof(float));
        }
      }
    }
  });
  return {out, hT, cT, gates, cseq, hprev};
}

std::vector<at::Tensor> lstm_backward(const at::Tensor& dout_in, const at::Tensor& dhT, const at::Tensor& dcT,
                                      const at::Tensor& R, const at::Tensor& gates, const at::Tensor& cseq,
                                      const at::Tensor& c0, const std::optional<at::Tensor>& mask,
                                      const std::optional<at::Tensor>& rdmask, bool zero_output) {
  const Shapes s{gates.size(0), gates.size(1), R.size(0), R.size(1)};
  const DropMode mode = drop_mode(rdmask);
  auto dout = dout_in.contiguous();
  auto dz = at::empty({s.B, s.T, s.G}, gates.options());
  auto dh0 = dhT.contiguous().clone();
  auto dc0 = dcT.contiguous().clone();
  // R^T (4u, u): dh_{t-1} = dz @ R^T becomes u-wide axpys, vectorised over u.
  auto RT = R.t().contiguous();
  const bool* mp = nullptr;
  at::Tensor mask_c;
  if (mask.has_value() && mask->defined()) {
    mask_c = mask->to(at::kBool).contiguous();
    mp = mask_c.data_ptr<bool>();
  }
  at::Tensor rdm_c;
  const float* rp = nullptr;
  if (mode != DropMode::kNone) {
    rdm_c = rdmask->contiguous();
    rp = rdm_c.data_ptr<float>();
  }
  const int64_t rdm_stride = mode == DropMode::kPerGate ? s.G : s.u;
  const float* doutp = dout.data_ptr<float>();
  const float* RTp = RT.data_ptr<float>();
  const float* gp = gates.data_ptr<float>();
  const float* csp = cseq.data_ptr<float>();
  const float* c0p = c0.data_ptr<float>();
  float* dzp = dz.data_ptr<float>();
  float* dhp = dh0.data_ptr<float>();
  float* dcp = dc0.data_ptr<float>();
  const bool row_loop = s.u <= kRowLoopMaxUnits;

  at::parallel_for(0, s.B, 1, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    std::vector<float> acc(rows * s.u, 0.0f);  // output grads of masked steps, owed to the last real step
    std::vector<float> dhv(s.u);
    std::vector<float> part(s.u);
    std::vector<float> dzbuf(row_loop ? 0 : rows * s.G);
    std::vector<float> dhbuf(row_loop ? 0 : rows * s.u);
    std::vector<uint8_t> real_rows(rows);
    std::vector<float> tmp(row_loop ? 0 : rows * s.u);
    at::Tensor dzt, dht, RTt;
    if (!row_loop) {
      dzt = at::from_blob(dzbuf.data(), {rows, s.G}, at::kFloat);
      dht = at::from_blob(dhbuf.data(), {rows, s.u}, at::kFloat);
      RTt = at::from_blob(const_cast<float*>(RTp), {s.G, s.u}, at::kFloat);
    }
    for (int64_t t = s.T - 1; t >= 0; --t) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t bt = b * s.T + t;
        float* dh = dhp + b * s.u;
        float* dc = dcp + b * s.u;
        float* ac = acc.data() + (b - b0) * s.u;
        const float* dout_t = doutp + bt * s.u;
        float* dzr = dzp + bt * s.G;
        const bool real = mp == nullptr || mp[bt];
        real_rows[b - b0] = real;
        if (!real) {
          if (!zero_output) {
            for (int64_t j = 0; j < s.u; ++j) ac[j] += dout_t[j];
          }
          std::fill(dzr, dzr + s.G, 0.0f);
          if (!row_loop) std::fill(dzbuf.begin() + (b - b0) * s.G, dzbuf.begin() + (b - b0 + 1) * s.G, 0.0f);
          continue;
        }
        const float* g = gp + bt * s.G;
        const float* ct = csp + bt * s.u;
        const float* cprev = t > 0 ? csp + (bt - 1) * s.u : c0p + b * s.u;
        const float* gi = g;
        const float* gf = g + s.u;
        const float* gg = g + 2 * s.u;
        const float* go = g + 3 * s.u;
        for (int64_t j = 0; j < s.u; ++j) {
          const float dht_j = dh[j] + dout_t[j] + ac[j];
          ac[j] = 0.0f;
          const float tc = tanh_approx(ct[j]);
          const float dct = dc[j] + dht_j * go[j] * (1.0f - tc * tc);
          dzr[j] = dct * gg[j] * gi[j] * (1.0f - gi[j]);
          dzr[s.u + j] = dct * cprev[j] * gf[j] * (1.0f - gf[j]);
          dzr[2 * s.u + j] = dct * gi[j] * (1.0f - gg[j] * gg[j]);
          dzr[3 * s.u + j] = dht_j * tc * go[j] * (1.0f - go[j]);
          dc[j] = dct * gf[j];
        }
        if (!row_loop) {
          std::memcpy(dzbuf.data() + (b - b0) * s.G, dzr, s.G * sizeof(float));
          continue;
        }
        // dh_{t-1} = sum over gates k of mask_k * (dz_k @ R_k^T)
        const float* m = rp == nullptr ? nullptr : rp + b * rdm_stride;
        std::fill(dhv.begin(), dhv.end(), 0.0f);
        for (int64_t k = 0; k < 4; ++k) {
          std::fill(part.begin(), part.end(), 0.0f);
          for (int64_t j = k * s.u; j < (k + 1) * s.u; ++j) {
            const float d = dzr[j];
            const float* r = RTp + j * s.u;
            for (int64_t l = 0; l < s.u; ++l) part[l] += d * r[l];
          }
          if (mode == DropMode::kPerGate) {
            const float* mk = m + k * s.u;
            for (int64_t l = 0; l < s.u; ++l) dhv[l] += part[l] * mk[l];
          } else {
            for (int64_t l = 0; l < s.u; ++l) dhv[l] += part[l];
          }
        }
        if (mode == DropMode::kShared) {
          for (int64_t l = 0; l < s.u; ++l) dh[l] = dhv[l] * m[l];
        } else {
          std::memcpy(dh, dhv.data(), s.u * sizeof(float));
        }
      }
      if (!row_loop) {
        // dh_{t-1} for the slice: one GEMM (rows x 4u) @ (4u x u), per gate when masks differ by gate.
        if (mode == DropMode::kPerGate) {
          dht.zero_();
          auto tmpt = at::from_blob(tmp.data(), {rows, s.u}, at::kFloat);
          for (int64_t k = 0; k < 4; ++k) {
            at::mm_out(tmpt, dzt.narrow(1, k * s.u, s.u), RTt.narrow(0, k * s.u, s.u));
            for (int64_t b = 0; b < rows; ++b) {
              const float* mk = rp + (b0 + b) * rdm_stride + k * s.u;
              for (int64_t l = 0; l < s.u; ++l) dhbuf[b * s.u + l] += tmp[b * s.u + l] * mk[l];
            }
          }
        } else {
          at::mm_out(dht, dzt, RTt);
        }
        for (int64_t b = 0; b < rows; ++b) {
          if (!real_rows[b]) continue;  // masked step: dh passes through unchanged
          float* dh = dhp + (b0 + b) * s.u;
          const float* src = dhbuf.data() + b * s.u;
          if (mode == DropMode::kShared) {
            const float* m = rp + (b0 + b) * rdm_stride;
            for (int64_t l = 0; l < s.u; ++l) dh[l] = src[l] * m[l];
          } else {
            std::memcpy(dh, src, s.u * sizeof(float));
          }
        }
      }
    }
  });
  return {dz, dh0, dc0};
}

}  // namespace

TORCH_LIBRARY(lstmtext_kernels, m) {
  m.def(
      "lstm_forward(Tensor xz, Tensor recurrent_kernel, Tensor h0, Tensor c0, Tensor? mask, Tensor? rdmask, "
      "bool zero_output, bool save) -> Tensor[]");
  m.def(
      "lstm_backward(Tensor dout, Tensor dhT, Tensor dcT, Tensor recurrent_kernel, Tensor gates, Tensor cseq, "
      "Tensor c0, Tensor? mask, Tensor? rdmask, bool zero_output) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(lstmtext_kernels, CPU, m) {
  m.impl("lstm_forward", &lstm_forward);
  m.impl("lstm_backward", &lstm_backward);
}
