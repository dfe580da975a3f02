// RoPE forward and backward. Each pair (a, b) is multiplied by f·R(θ) with R(θ) = [[c, -s], [s, c]]
// (f: the YaRN attention factor); the backward multiplies by the transpose f·R(-θ).
#include "kernels/cpu/grad/Detail.h"

#include <cmath>
#include <type_traits>

namespace kt::cpu::grad::detail {

template <class T> RopeTable<T>::RopeTable(const RopeParams& p, int64_t len) : half(p.dim / 2) {
  std::vector<float> inv = ropeInvFreq(p);
  cos.resize(size_t(len * half));
  sin.resize(size_t(len * half));
  for (int64_t pos = 0; pos < len; ++pos)
    for (int i = 0; i < half; ++i) {
      // The angle in T from the f32 frequencies, as applyRope computes it for T = float.
      T angle = T(pos) * T(inv[size_t(i)]);
      cos[size_t(pos * half + i)] = std::cos(angle) * T(p.attentionFactor);
      sin[size_t(pos * half + i)] = std::sin(angle) * T(p.attentionFactor);
    }
}

template <class T>
void rope(T* x, int heads, int64_t stride, int64_t offset, int64_t position, const RopeParams& p,
          const RopeTable<T>& table, const std::vector<float>& invFreq, bool inverse) {
  if constexpr (std::is_same_v<T, float>) {
    if (!inverse)
      return applyRope(x, heads, stride, offset, position, p, invFreq);
  }
  const int half = table.half;
  const T* cs = table.cos.data() + position * half;
  const T* sn = table.sin.data() + position * half;
  const T sign = inverse ? T(-1) : T(1);
  for (int h = 0; h < heads; ++h) {
    T* v = x + h * stride + offset;
    for (int i = 0; i < half; ++i) {
      T* a = p.interleaved ? &v[2 * i] : &v[i];
      T* b = p.interleaved ? &v[2 * i + 1] : &v[i + half];
      T x0 = *a, x1 = *b, s = sign * sn[i];
      *a = x0 * cs[i] - x1 * s;
      *b = x1 * cs[i] + x0 * s;
    }
  }
}

template struct RopeTable<float>;
template struct RopeTable<double>;
template void rope<float>(float*, int, int64_t, int64_t, int64_t, const RopeParams&,
                          const RopeTable<float>&, const std::vector<float>&, bool);
template void rope<double>(double*, int, int64_t, int64_t, int64_t, const RopeParams&,
                           const RopeTable<double>&, const std::vector<float>&, bool);

} // namespace kt::cpu::grad::detail
