// A row of u floats as NV vectors of simd.h, written once against its operations and compiled into each of
// its ISA namespaces (this file is included inside them; no include guard on purpose, as vector_math.h).

// The lanes of a row of u floats cut into NV vectors: vector v holds floats [W*v, W*v + W) of the row, the
// last one possibly partial. Full vectors use plain loads and stores (masked stores are slow on some CPUs).
template <int NV>
struct Lanes {
  Mask m[NV];
  bool full[NV];
  explicit Lanes(int64_t u) {
    for (int v = 0; v < NV; ++v) {
      m[v] = first_lanes(u - int64_t{W} * v);
      full[v] = u - int64_t{W} * v >= W;
    }
  }
  V load(int v, const float* p) const { return full[v] ? loadu(p) : load_first(m[v], p); }
  void store(int v, float* p, V x) const {
    if (full[v]) {
      storeu(p, x);
    } else {
      store_first(p, m[v], x);
    }
  }
};
