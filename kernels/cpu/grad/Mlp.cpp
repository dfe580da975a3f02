// SwiGLU MLP: g = gate(x), u = up(x), h = silu(g)·u, y = down(h), silu(g) = g·σ(g).
// Backward: dh = dy·W_down(+LoRA); dg = dh·u·σ(g)(1 + g(1 - σ(g))); du = dh·silu(g); then the gate
// and up projections' backward summed into dx. g and u are recomputed from x.
#include "kernels/cpu/grad/Detail.h"
#include "runtime/support/ThreadPool.h"

#include <cmath>

namespace kt::cpu::grad {

namespace {
// silu(g)·u exactly as the inference op (cpuops::swigluInPlace) computes it.
template <class T> T swiglu(T g, T u) {
  return g / (T(1) + std::exp(-g)) * u;
}
} // namespace

namespace detail {
template <class T> void validateMlp(const MlpWeightsT<T>& w, const char* op) {
  const int64_t H = w.gate.w.cols, I = w.gate.w.rows;
  requireProjection(w.gate, op, "gate_proj", I, H);
  requireProjection(w.up, op, "up_proj", I, H);
  requireProjection(w.down, op, "down_proj", H, I);
}
template void validateMlp<float>(const MlpWeightsT<float>&, const char*);
template void validateMlp<double>(const MlpWeightsT<double>&, const char*);
} // namespace detail

template <class T>
void mlpForward(ThreadPool& pool, const MlpWeightsT<T>& w, const T* x, int64_t rows, T* y) {
  detail::validateMlp(w, "mlp");
  const int64_t inter = w.gate.w.rows;
  std::vector<T> g(size_t(rows * inter)), u(g.size());
  linearForward(pool, w.gate, x, rows, g.data());
  linearForward(pool, w.up, x, rows, u.data());
  for (size_t i = 0; i < g.size(); ++i)
    g[i] = swiglu(g[i], u[i]);
  linearForward(pool, w.down, g.data(), rows, y);
}

namespace detail {
template <class T>
void mlpBackwardImpl(ThreadPool& pool, const MlpWeightsT<T>& w, const T* x, int64_t rows,
                     const T* dy, T* dx, bool accumulate, T* yOut, T* dyDotY) {
  const int64_t inter = w.gate.w.rows;
  const size_t n = size_t(rows * inter);
  std::vector<T> g(n), u(n), h(n), dh(n);
  linearForward(pool, w.gate, x, rows, g.data());
  linearForward(pool, w.up, x, rows, u.data());
  for (size_t i = 0; i < n; ++i)
    h[i] = swiglu(g[i], u[i]);
  if (yOut)
    linearForward(pool, w.down, h.data(), rows, yOut);
  linearBackwardAcc(pool, w.down, h.data(), rows, dy, dh.data(), false);
  if (dyDotY) {
    const std::vector<T> bias = w.down.bias.data ? vectorOf<T>(w.down.bias) : std::vector<T>();
    const int64_t H = w.down.w.rows;
    for (int64_t r = 0; r < rows; ++r) {
      T dot = 0;
      for (int64_t i = 0; i < inter; ++i)
        dot += dh[size_t(r * inter + i)] * h[size_t(r * inter + i)];
      for (size_t j = 0; j < bias.size(); ++j)
        dot += dy[r * H + int64_t(j)] * bias[j];
      dyDotY[r] = dot;
    }
  }
  // Reuse g for dg and u for du once their values are consumed.
  pool.parallelFor(int64_t(n), 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T gi = g[size_t(i)], ui = u[size_t(i)], sg = T(1) / (T(1) + std::exp(-gi));
      u[size_t(i)] = dh[size_t(i)] * gi * sg;                             // du = dh·silu(g)
      g[size_t(i)] = dh[size_t(i)] * ui * sg * (T(1) + gi * (T(1) - sg)); // dg
    }
  });
  linearBackwardAcc(pool, w.gate, x, rows, g.data(), dx, accumulate);
  linearBackwardAcc(pool, w.up, x, rows, u.data(), dx, true);
}
} // namespace detail

template <class T>
void mlpBackward(ThreadPool& pool, const MlpWeightsT<T>& w, const T* x, int64_t rows, const T* dy,
                 T* dx) {
  detail::validateMlp(w, "mlp");
  detail::mlpBackwardImpl(pool, w, x, rows, dy, dx, false, static_cast<T*>(nullptr));
}

#define KT_GRAD_INSTANTIATE(T)                                                                     \
  template void mlpForward<T>(ThreadPool&, const MlpWeightsT<T>&, const T*, int64_t, T*);          \
  template void mlpBackward<T>(ThreadPool&, const MlpWeightsT<T>&, const T*, int64_t, const T*,    \
                               T*);                                                                \
  template void detail::mlpBackwardImpl<T>(ThreadPool&, const MlpWeightsT<T>&, const T*, int64_t,  \
                                           const T*, T*, bool, T*, T*);
KT_GRAD_INSTANTIATE(float)
KT_GRAD_INSTANTIATE(double)
#undef KT_GRAD_INSTANTIATE

} // namespace kt::cpu::grad
