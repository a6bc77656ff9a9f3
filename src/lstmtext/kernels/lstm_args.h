// The arguments every strategy of the fused Keras-LSTM recurrence takes (lstm_cpu.cpp, lstm_lanes.h): one
// parameter object per direction instead of a long signature repeated by each strategy, filled once by the
// op entry points of lstm_cpu.cpp.

#pragma once

#include <cstdint>

namespace lstmtext_lstm {

// Recurrent dropout: none, one (B, u) mask shared by the gates, or one per gate (B, 4, u).
enum class DropMode { kNone = 0, kShared = 1, kPerGate = 2 };

// Largest u served by the per-row strategies; above it one GEMM per step is faster.
constexpr int64_t kRowMaxUnits = 48;

struct Common {
  int64_t B, T, u, G;
  DropMode mode;
  int64_t rdm_stride;  // floats per row of the dropout mask: u (shared) or 4u (per gate)
  const bool* mask;    // (B, T) or null
  const float* rdm;    // (B, u) / (B, 4, u) or null
  bool zero_output;
};

struct FwdArgs {
  Common k;
  const float* xz;  // (B, T, 4u), or a (V, 4u) table of projected embeddings read through ids
  const int64_t* ids = nullptr;  // (B, T) rows of the table, or null
  const float* R;   // (u, 4u)
  float* out;       // (B, T, u)
  float* h;         // (B, u) running state, ends as h_T
  float* c;         // (B, u)
  bool save;
  float* gates;  // (B, T, 4u) activated i, f, g, o
  float* cseq;   // (B, T, u) carried c after each step
  float* hprev;  // (B, T, u) carried h before each step, or null when the backward does not read it
  const float* Rpk = nullptr;  // R packed in panels (small_gemm.h pack_panels) for kGemm, or null
  // kGemm with the input projection taken per step (lstm_forward_x): xz is null and each step adds x_t @ kernel
  // (kernel packed in panels) and the bias to the recurrent product.
  const float* x = nullptr;     // (B, T, F) layer inputs
  const float* K = nullptr;     // (F, 4u) kernel
  const float* Kpk = nullptr;   // the kernel packed by pack_panels (vector builds)
  const float* bias = nullptr;  // (4u), zeros when the layer has none
  int64_t F = 0;
  // kGemm inference within bfloat16_matmuls() (AVX512_BF16 builds): R and the kernel packed as bfloat16 pairs
  // (small_gemm.h pack_panels_bf16); each step rounds h_{t-1} (and x_t) to bfloat16 and multiplies with them.
  const uint32_t* Rbf = nullptr;
  const uint32_t* Kbf = nullptr;
};

struct BwdArgs {
  Common k;
  const float* dout;   // (B, T, u); null in lstm_backward_ids when only h_T was used
  const float* R;      // (u, 4u)
  const float* RT;     // (4u, u)
  const float* gates;  // (B, T, 4u)
  const float* cseq;   // (B, T, u)
  const float* c0;     // (B, u)
  float* dz;           // (B, T, 4u) out, or null when the weight gradients are fused (kGemm)
  float* dh;           // (B, u) in: dh_T, out: dh_0
  float* dc;           // (B, u)
  // Fused weight gradients (kGemm): per step, dx_t = dz_t K^T, dK += x_t^T dz_t, dR += h_{t-1}^T dz_t.
  const float* x = nullptr;      // (B, T, F) layer inputs
  const float* KT = nullptr;     // (4u, F) kernel transposed
  const float* hprev = nullptr;  // (B, T, u) carried h before each step
  float* dx = nullptr;           // (B, T, F) out
  int64_t F = 0;
  const float* RTpk = nullptr;   // R^T packed in panels for kGemm, or null
  // Fused embedding backward (kVector, inputs read from a projected table by token id): the step gradients
  // are added into the table gradient by id and dR is formed in the loop, so neither dz nor h_{t-1} is stored.
  const int64_t* ids = nullptr;  // (B, T) token ids
  const float* h0 = nullptr;     // (B, u) initial h (the h_{t-1} of each row's first real step)
};

inline bool is_real(const Common& k, int64_t bt) { return k.mask == nullptr || k.mask[bt]; }

// The input projection of (row, step) bt: its own row of xz, or the table row of its token.
inline const float* xz_row(const FwdArgs& a, int64_t bt) { return a.xz + (a.ids != nullptr ? a.ids[bt] : bt) * a.k.G; }

// Asks for the cache lines of n floats at p ahead of use, where the hardware prefetcher does not: the
// projected table's rows picked by token id in the forward (random rows of a table of up to a few MB, a tenth
// of the small-u forward in perf; the prefetch takes 5-9 % off it), and in the backward the saved gates and c
// of the previous step, read in reverse time by 8 interleaved rows (a fifth of it in perf; 15 % off). The
// table gradient's rows in the fused backward measured 3 % slower with it (that partial stays in L2).
inline void prefetch_floats(const float* p, int64_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(float));
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 0, 3);
  __builtin_prefetch(c + bytes - 1, 0, 3);  // the last line when p is not line-aligned
}

}  // namespace lstmtext_lstm
