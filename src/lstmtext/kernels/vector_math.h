// Vector activations (the Cephes single-precision polynomials of lstm_cpu.cpp's scalar ones, ~1 ulp on the
// used range), written once against simd.h's operations and compiled into each of its ISA namespaces (this
// file is included inside them; no include guard on purpose).

LSTMTEXT_INLINE V exp_v(V x) {
  x = min(max(x, set1(-87.0f)), set1(88.0f));
  const V fx = floor(fmadd(x, set1(1.44269504088896341f), set1(0.5f)));
  x = fnmadd(fx, set1(0.693359375f), x);
  x = fnmadd(fx, set1(-2.12194440e-4f), x);
  const V z = mul(x, x);
  V y = set1(1.9875691500e-4f);
  y = fmadd(y, x, set1(1.3981999507e-3f));
  y = fmadd(y, x, set1(8.3334519073e-3f));
  y = fmadd(y, x, set1(4.1665795894e-2f));
  y = fmadd(y, x, set1(1.6666665459e-1f));
  y = fmadd(y, x, set1(5.0000001201e-1f));
  y = add(fmadd(y, z, x), set1(1.0f));
  return ldexp(y, fx);  // y * 2^fx
}

LSTMTEXT_INLINE V sigmoid_v(V x) { return recip(add(set1(1.0f), exp_v(sub(zero(), x)))); }

LSTMTEXT_INLINE V tanh_v(V x) {
  const V sign = set1(-0.0f);
  const V ax = bit_andnot(sign, x);
  const V e = exp_v(mul(set1(2.0f), min(ax, set1(9.0f))));
  V big = fnmadd(set1(2.0f), recip(add(e, set1(1.0f))), set1(1.0f));
  big = bit_or(big, bit_and(sign, x));
  const V z = mul(x, x);
  V p = set1(-5.70498872745e-3f);
  p = fmadd(p, z, set1(2.06390887954e-2f));
  p = fmadd(p, z, set1(-5.37397155531e-2f));
  p = fmadd(p, z, set1(1.33314422036e-1f));
  p = fmadd(p, z, set1(-3.33332819422e-1f));
  const V small = fmadd(mul(x, z), p, x);
  return select_lt(ax, set1(0.625f), small, big);
}
