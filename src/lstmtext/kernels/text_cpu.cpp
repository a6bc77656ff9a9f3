// Word lookups of the tokenizer: split normalized text into words and map each word to its vocabulary rank.
//
// In Python this is a dict lookup per word (about 40 us per IMDB review, measured in bench/RESULTS.md), all of
// it holding the GIL; in the HTTP service that time is taken from the event loop. Here it runs without the GIL,
// through an open-addressing hash table over the vocabulary's UTF-8 bytes that the caller builds once.
//
// Input text: normalized texts (only the bytes a-z, ' and space, see lstmtext.text.tokenizer) joined by '\n';
// words are the runs of bytes other than ASCII whitespace (what Python's bytes.split() separates on).

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

namespace {

inline bool is_space(uint8_t b) { return b == ' ' || (b >= '\t' && b <= '\r'); }  // \t \n \v \f \r

inline uint64_t fnv1a(const uint8_t* p, int64_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (int64_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

void check_vocab(const at::Tensor& words, const at::Tensor& offsets) {
  TORCH_CHECK(words.scalar_type() == at::kByte && words.dim() == 1 && words.is_contiguous(),
              "vocab_slots: words must be a contiguous 1-D uint8 tensor");
  TORCH_CHECK(offsets.scalar_type() == at::kLong && offsets.dim() == 1 && offsets.is_contiguous() &&
                  offsets.numel() >= 1,
              "vocab_slots: offsets must be a contiguous 1-D int64 tensor of n + 1 entries");
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int64_t n = offsets.numel() - 1;
  TORCH_CHECK(off[0] == 0 && off[n] == words.numel(), "vocab_slots: offsets must run from 0 to len(words)");
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK(off[i] <= off[i + 1], "vocab_slots: offsets must not decrease");
  }
}

// Slot table of size 2^k >= 2n: slot -> word index, -1 where empty (linear probing).
at::Tensor vocab_slots(const at::Tensor& words, const at::Tensor& offsets) {
  check_vocab(words, offsets);
  const int64_t n = offsets.numel() - 1;
  TORCH_CHECK(n < (int64_t{1} << 30), "vocab_slots: at most 2^30 words");
  int64_t size = 16;
  while (size < 2 * n) size <<= 1;
  at::Tensor slots = at::full({size}, -1, at::kInt);
  int32_t* s = slots.data_ptr<int32_t>();
  const uint8_t* w = words.data_ptr<uint8_t>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  const uint64_t mask = static_cast<uint64_t>(size - 1);
  for (int64_t i = 0; i < n; ++i) {
    uint64_t h = fnv1a(w + off[i], off[i + 1] - off[i]) & mask;
    while (s[h] != -1) h = (h + 1) & mask;
    s[h] = static_cast<int32_t>(i);
  }
  return slots;
}

// (ranks int32 of every word in order, word count int64 per text). A word's rank is its index + 1 (the first
// word of the vocabulary has rank 1), or n + 1 when it is not in the vocabulary.
std::tuple<at::Tensor, at::Tensor> lookup_words(const at::Tensor& text, int64_t n_texts, const at::Tensor& slots,
                                                const at::Tensor& words, const at::Tensor& offsets) {
  TORCH_CHECK(text.scalar_type() == at::kByte && text.dim() == 1 && text.is_contiguous(),
              "lookup_words: text must be a contiguous 1-D uint8 tensor");
  TORCH_CHECK(slots.scalar_type() == at::kInt && slots.dim() == 1 && slots.is_contiguous() &&
                  slots.numel() >= 16 && (slots.numel() & (slots.numel() - 1)) == 0,
              "lookup_words: slots must come from vocab_slots");
  check_vocab(words, offsets);
  const int64_t n = offsets.numel() - 1;
  const int64_t size = slots.numel();
  TORCH_CHECK(size >= 2 * n, "lookup_words: slots were built for another vocabulary");
  const uint8_t* t = text.data_ptr<uint8_t>();
  const int64_t len = text.numel();
  int64_t newlines = 0;
  for (int64_t i = 0; i < len; ++i) newlines += t[i] == '\n';
  TORCH_CHECK(n_texts >= 1 && newlines == n_texts - 1, "lookup_words: text holds ", newlines + 1,
              " texts, expected ", n_texts);

  const int32_t* s = slots.data_ptr<int32_t>();
  const uint8_t* w = words.data_ptr<uint8_t>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  const uint64_t mask = static_cast<uint64_t>(size - 1);
  const int32_t unknown = static_cast<int32_t>(n + 1);

  std::vector<int32_t> ranks;
  ranks.reserve(static_cast<size_t>(len / 2 + 1));
  at::Tensor counts = at::zeros({n_texts}, at::kLong);
  int64_t* c = counts.data_ptr<int64_t>();
  int64_t doc = 0;
  int64_t i = 0;
  while (i < len) {
    const uint8_t b = t[i];
    if (b == '\n') {
      ++doc;
      ++i;
      continue;
    }
    if (is_space(b)) {
      ++i;
      continue;
    }
    int64_t j = i + 1;
    while (j < len && !is_space(t[j])) ++j;
    const int64_t wl = j - i;
    uint64_t h = fnv1a(t + i, wl) & mask;
    int32_t rank = unknown;
    for (int32_t k = s[h]; k != -1; h = (h + 1) & mask, k = s[h]) {
      if (off[k + 1] - off[k] == wl && std::memcmp(w + off[k], t + i, static_cast<size_t>(wl)) == 0) {
        rank = k + 1;
        break;
      }
    }
    ranks.push_back(rank);
    ++c[doc];
    i = j;
  }
  at::Tensor out = at::empty({static_cast<int64_t>(ranks.size())}, at::kInt);
  if (!ranks.empty()) std::memcpy(out.data_ptr<int32_t>(), ranks.data(), ranks.size() * sizeof(int32_t));
  return {out, counts};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(lstmtext_kernels, m) {
  m.def("vocab_slots(Tensor words, Tensor offsets) -> Tensor");
  m.def("lookup_words(Tensor text, int n_texts, Tensor slots, Tensor words, Tensor offsets) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(lstmtext_kernels, CPU, m) {
  m.impl("vocab_slots", &vocab_slots);
  m.impl("lookup_words", &lookup_words);
}
