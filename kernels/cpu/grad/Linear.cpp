// linear with a LoRA adapter.
//   forward:  u = x Aᵀ [rows, r];  y = x Wᵀ + b + scale · u Bᵀ
//   backward: dB += scale · dyᵀ u;  du = scale · dy B;  dA += duᵀ x;  dx = dy W + du A
// (W and b are frozen; u is recomputed, it is rows × r.)
#include "kernels/cpu/grad/Detail.h"

namespace kt::cpu::grad {

namespace {
template <class T> bool active(const LoraT<T>* l) {
  return l && l->A && l->B && l->r > 0;
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
