// linear with a LoRA adapter.
//   forward:  u = x Aᵀ [rows, r];  y = x Wᵀ + b + scale · u Bᵀ
//   backward: dB += scale · dyᵀ u;  du = scale · dy B;  dA += duᵀ x;  dx = dy W + du A
// (W and b are frozen; u is recomputed, it is rows × r.)
#include "kernels/cpu/grad/Detail.h"
#include "kernels/cpu/grad/Kernels.h"

#include <type_traits>

namespace kt::cpu::grad {

namespace {
template <class T> bool active(const LoraT<T>* l) {
  return l && l->A && l->B && l->r > 0;
}

// In f32 the products whose inner or outer size is the rank r go through the register-tiled
// kernel (Kernels.h) with the r-sized operand transposed: the generic gemm* run dot or axpy loops
// of length r there, which cost more than the arithmetic at r = 8..64. They are small (rows·r·
// features multiply-adds), so they run on the calling thread.
std::vector<float> transposed(const float* a, int64_t rows, int64_t cols) {
  std::vector<float> t(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      t[size_t(j * rows + i)] = a[i * cols + j];
  return t;
}

// y[rows, out] += scale · u[rows, r] · B[out, r]ᵀ
void loraUpF32(const Lora& l, int64_t rows, int64_t out, const float* u, float* y) {
  std::vector<float> us(u, u + rows * l.r), bt = transposed(l.B, out, l.r);
  for (float& v : us)
    v *= l.scale;
  kernels::gemmAcc(kernels::bestPath(), rows, out, l.r, us.data(), l.r, bt.data(), out, y, out);
}

// The adapter part of the backward from u = x·Aᵀ (only needed for dB):
//   dB += scale · dyᵀ u,  du = scale · dy B,  dA += duᵀ x,  dx += du A.
void loraBackwardF32(const Lora& l, const float* x, int64_t rows, int64_t in, int64_t out,
                     const float* dy, const float* u, float* dx) {
  const kernels::Path path = kernels::bestPath();
  const int64_t r = l.r;
  if (l.dB) { // dBᵀ[r, out] = (scale·u)ᵀ · dy, added to dB
    std::vector<float> ust = transposed(u, rows, r), dbt(static_cast<size_t>(r * out), 0.f);
    for (float& v : ust)
      v *= l.scale;
    kernels::gemmAcc(path, r, out, rows, ust.data(), rows, dy, out, dbt.data(), out);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t q = 0; q < r; ++q)
        l.dB[o * r + q] += dbt[size_t(q * out + o)];
  }
  std::vector<float> du(static_cast<size_t>(rows * r), 0.f);
  kernels::gemmAcc(path, rows, r, out, dy, out, l.B, r, du.data(), r);
  for (float& v : du)
    v *= l.scale;
  if (l.dA) {
    const std::vector<float> dut = transposed(du.data(), rows, r);
    kernels::gemmAcc(path, r, in, rows, dut.data(), rows, x, in, l.dA, in);
  }
  if (dx)
    kernels::gemmAcc(path, rows, in, r, du.data(), r, l.A, in, dx, in);
}
} // namespace

template <class T>
void linearForward(ThreadPool& pool, const ProjectionT<T>& p, const T* x, int64_t rows, T* y) {
  const int64_t out = p.w.rows, in = p.w.cols;
  detail::matmulXWt(pool, x, rows, p.w, p.bias, y);
  if (!active(p.lora))
    return;
  const LoraT<T>& l = *p.lora;
  std::vector<T> u(size_t(rows * l.r));
  detail::gemmNT(pool, rows, l.r, in, T(1), x, l.A, u.data(), false);
  if constexpr (std::is_same_v<T, float>)
    loraUpF32(l, rows, out, u.data(), y);
  else
    detail::gemmNT(pool, rows, out, l.r, l.scale, u.data(), l.B, y, true);
}

namespace detail {
template <class T>
void linearBackwardAcc(ThreadPool& pool, const ProjectionT<T>& p, const T* x, int64_t rows,
                       const T* dy, T* dx, bool accumulate) {
  const int64_t out = p.w.rows, in = p.w.cols;
  if (dx)
    matmulDyW(pool, dy, rows, p.w, dx, accumulate);
  if (!active(p.lora))
    return;
  const LoraT<T>& l = *p.lora;
  std::vector<T> u(size_t(rows * l.r)), du(size_t(rows * l.r));
  if constexpr (std::is_same_v<T, float>) {
    if (l.dB)
      gemmNT(pool, rows, l.r, in, T(1), x, l.A, u.data(), false);
    loraBackwardF32(l, x, rows, in, out, dy, u.data(), dx);
    return;
  }
  if (l.dB) {
    gemmNT(pool, rows, l.r, in, T(1), x, l.A, u.data(), false);
    gemmTN(pool, out, l.r, rows, l.scale, dy, u.data(), l.dB, true);
  }
  gemmNN(pool, rows, l.r, out, l.scale, dy, l.B, du.data(), false);
  if (l.dA)
    gemmTN(pool, l.r, in, rows, T(1), du.data(), x, l.dA, true);
  if (dx)
    gemmNN(pool, rows, in, l.r, T(1), du.data(), l.A, dx, true);
}
} // namespace detail

template <class T>
void linearBackward(ThreadPool& pool, const ProjectionT<T>& p, const T* x, int64_t rows,
                    const T* dy, T* dx) {
  detail::linearBackwardAcc(pool, p, x, rows, dy, dx, false);
}

#define KT_GRAD_INSTANTIATE(T)                                                                     \
  template void linearForward<T>(ThreadPool&, const ProjectionT<T>&, const T*, int64_t, T*);       \
  template void linearBackward<T>(ThreadPool&, const ProjectionT<T>&, const T*, int64_t, const T*, \
                                  T*);                                                             \
  template void detail::linearBackwardAcc<T>(ThreadPool&, const ProjectionT<T>&, const T*,         \
                                             int64_t, const T*, T*, bool);
KT_GRAD_INSTANTIATE(float)
KT_GRAD_INSTANTIATE(double)
#undef KT_GRAD_INSTANTIATE

} // namespace kt::cpu::grad
