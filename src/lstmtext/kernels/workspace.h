// Reused output buffers for the per-call tensors of the CPU kernels (saved gates and states, partial
// gradients): a training step allocates the same few multi-megabyte tensors every time, and with glibc's
// default thresholds each one is mapped fresh and zero-filled by the OS (page faults): about 1,500 faults
// and 2-4 ms of system time per tutorial step measured on AMD Zen 4, more than the saving stores themselves.
// A pooled tensor is handed out again only when nobody else holds it (neither the tensor nor its storage is
// referenced outside the pool, e.g. once autograd has released the tensors it saved), so reuse is invisible
// to callers. The pool is bounded in entries and bytes; small tensors are left to the allocator.

#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <mutex>
#include <vector>

namespace lstmtext_workspace {

constexpr int64_t kMinBytes = 256 << 10;   // smaller ones come from malloc's free lists anyway
constexpr int64_t kMaxBytes = 64 << 20;    // larger ones: the arithmetic dwarfs the page faults
constexpr int64_t kPoolBytes = 192 << 20;  // everything kept, free or in use
constexpr size_t kPoolEntries = 16;

class Pool {
 public:
  // An uninitialised float32 CPU tensor of `sizes`, reused from the pool when a free one has as many elements.
  at::Tensor empty(at::IntArrayRef sizes) {
    int64_t n = 1;
    for (const int64_t s : sizes) n *= s;
    const int64_t bytes = n * static_cast<int64_t>(sizeof(float));
    const auto opts = at::TensorOptions().dtype(at::kFloat).device(at::kCPU);
    if (bytes < kMinBytes || bytes > kMaxBytes) return at::empty(sizes, opts);
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : pool_) {
      if (t.numel() == n && is_free(t)) return t.view(sizes);
    }
    // Make room: drop free entries (oldest first) until the new one fits the bounds.
    int64_t held = 0;
    for (const auto& t : pool_) held += t.numel() * static_cast<int64_t>(sizeof(float));
    for (size_t i = 0; i < pool_.size() && (pool_.size() >= kPoolEntries || held + bytes > kPoolBytes);) {
      if (is_free(pool_[i])) {
        held -= pool_[i].numel() * static_cast<int64_t>(sizeof(float));
        pool_.erase(pool_.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    auto t = at::empty({n}, opts);
    if (pool_.size() < kPoolEntries && held + bytes <= kPoolBytes) pool_.push_back(t);
    return t.view(sizes);
  }

 private:
  static bool is_free(const at::Tensor& t) { return t.use_count() == 1 && t.storage().use_count() == 1; }
  std::mutex mu_;
  std::vector<at::Tensor> pool_;
};

inline Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: tensors must not be freed after torch's allocator at exit
  return *p;
}

// A float32 CPU tensor of `sizes` whose contents are undefined (as at::empty), from the pool where it pays.
inline at::Tensor empty(at::IntArrayRef sizes) { return pool().empty(sizes); }

}  // namespace lstmtext_workspace
