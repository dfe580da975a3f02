// MoE layer as runtime/exec/cpu/MoeOp.cpp computes it, with adapters on every expert:
//   y_t = Σ_k w_tk · E_{e_tk}(x_t)  +  γ_t · S(x_t),   γ_t = σ(x_t·g) (Qwen2-MoE) or 1
// Backward (router, bias and g frozen), with dw_tk = dy_t · E_{e_tk}(x_t) fed to routeBackward:
//   dx_t = Σ_k w_tk · dE(x_t; dy_t)             expert paths (adapter grads accumulate)
//        + Σ_i dl_ti · W_router[i]              routing weights through the router logits
//        + dS(x_t; γ_t dy_t) + (dy_t·S(x_t)) γ_t(1-γ_t) · g
// Tokens are grouped by expert so each expert's weights are streamed once for all its tokens.
#include "kernels/cpu/grad/Detail.h"

#include <algorithm>
#include <cmath>

namespace kt::cpu::grad {

namespace {
struct Slot {
  int64_t token;
  int k; // position in the token's top-k list
};

struct Routing {
  std::vector<int> chosen; // [rows, K]
  std::vector<std::vector<Slot>> byExpert;
};

template <class T> void validate(const MoeRoutingParams& p, const MoeWeightsT<T>& w) {
  using detail::require;
  const char* op = "moe";
  const int64_t H = w.router.cols;
  require(p.numExperts > 0 && w.router.rows == p.numExperts, op,
          "router has " + std::to_string(w.router.rows) + " rows for " +
              std::to_string(p.numExperts) + " experts");
  require(p.topK > 0 && p.topK <= p.numExperts, op, "experts_per_token must be in 1..num_experts");
  require(p.method == MoeTopk::Greedy || (p.nGroup > 0 && p.numExperts % p.nGroup == 0 &&
                                          p.topkGroup > 0 && p.topkGroup <= p.nGroup),
          op, "n_group must divide num_experts and topk_group be in 1..n_group");
  require(!w.correctionBias.data || w.correctionBias.cols == p.numExperts, op,
          "correction bias length differs from num_experts");
  require(w.experts != nullptr, op, "no experts");
  for (int e = 0; e < p.numExperts; ++e) {
    detail::validateMlp(w.experts[e], op);
    require(w.experts[e].gate.w.cols == H, op, "expert " + std::to_string(e) + " hidden size");
  }
  if (w.shared) {
    detail::validateMlp(*w.shared, op);
    require(w.shared->gate.w.cols == H, op, "shared expert hidden size");
  }
  require(!w.sharedExpertGate.data || w.sharedExpertGate.cols == H, op,
          "shared_expert_gate width differs from the hidden size");
}

template <class T>
Routing route(ThreadPool& pool, const MoeRoutingParams& p, const MoeWeightsT<T>& w, const T* x,
              int64_t rows, std::vector<T>& logits, std::vector<T>& weight) {
  const int E = p.numExperts, K = p.topK;
  logits.resize(size_t(rows * E));
  detail::matmulXWt(pool, x, rows, w.router, MatrixView{}, logits.data());
  std::vector<float> bias;
  if (w.correctionBias.data)
    bias = detail::vectorOf<float>(w.correctionBias);
  Routing r;
  r.chosen.resize(size_t(rows * K));
  weight.resize(size_t(rows * K));
  for (int64_t t = 0; t < rows; ++t)
    routeForward(logits.data() + t * E, bias.empty() ? nullptr : bias.data(), p,
                 r.chosen.data() + t * K, weight.data() + t * K);
  r.byExpert.resize(size_t(E));
  for (int64_t t = 0; t < rows; ++t)
    for (int k = 0; k < K; ++k)
      r.byExpert[size_t(r.chosen[size_t(t * K + k)])].push_back({t, k});
  return r;
}

template <class T> std::vector<T> gather(const T* x, int64_t cols, const std::vector<Slot>& list) {
  std::vector<T> out(list.size() * size_t(cols));
  for (size_t i = 0; i < list.size(); ++i)
    std::copy_n(x + list[i].token * cols, cols, out.data() + i * cols);
  return out;
}

// γ_t = σ(x_t·g) of the shared-expert gate.
template <class T>
std::vector<T> sharedGate(ThreadPool& pool, const MatrixView& g, const T* x, int64_t rows) {
  std::vector<T> gs(static_cast<size_t>(rows));
  detail::matmulXWt(pool, x, rows, g, MatrixView{}, gs.data());
  for (T& v : gs)
    v = T(1) / (T(1) + std::exp(-v));
  return gs;
}
} // namespace

template <class T>
void moeForward(ThreadPool& pool, const MoeRoutingParams& p, const MoeWeightsT<T>& w, const T* x,
                int64_t rows, T* y) {
  validate(p, w);
  const int64_t H = w.router.cols;
  const int K = p.topK;
  std::vector<T> logits, weight;
  Routing r = route(pool, p, w, x, rows, logits, weight);
  std::fill(y, y + rows * H, T(0));
  for (int e = 0; e < p.numExperts; ++e) {
    const auto& list = r.byExpert[size_t(e)];
    if (list.empty())
      continue;
    std::vector<T> xe = gather(x, H, list), ye(xe.size());
    mlpForward(pool, w.experts[e], xe.data(), int64_t(list.size()), ye.data());
    for (size_t i = 0; i < list.size(); ++i) {
      const T wk = weight[size_t(list[i].token * K + list[i].k)];
      T* o = y + list[i].token * H;
      for (int64_t j = 0; j < H; ++j)
        o[j] += wk * ye[i * size_t(H) + size_t(j)];
    }
  }
  if (w.shared) {
    std::vector<T> ys(size_t(rows * H));
    mlpForward(pool, *w.shared, x, rows, ys.data());
    std::vector<T> gs = w.sharedExpertGate.data ? sharedGate(pool, w.sharedExpertGate, x, rows)
                                                : std::vector<T>(size_t(rows), T(1));
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t j = 0; j < H; ++j)
        y[t * H + j] += gs[size_t(t)] * ys[size_t(t * H + j)];
  }
}

template <class T>
void moeBackward(ThreadPool& pool, const MoeRoutingParams& p, const MoeWeightsT<T>& w, const T* x,
                 int64_t rows, const T* dy, T* dx) {
  validate(p, w);
  const int64_t H = w.router.cols;
  const int E = p.numExperts, K = p.topK;
  std::vector<T> logits, weight;
  Routing r = route(pool, p, w, x, rows, logits, weight);
  std::fill(dx, dx + rows * H, T(0));
  std::vector<T> dweight(size_t(rows * K), T(0));
  for (int e = 0; e < E; ++e) {
    const auto& list = r.byExpert[size_t(e)];
    if (list.empty())
      continue;
    const int64_t n = int64_t(list.size());
    std::vector<T> xe = gather(x, H, list), dye(xe.size()), ye(xe.size()), dxe(xe.size());
    for (size_t i = 0; i < list.size(); ++i) {
      const T wk = weight[size_t(list[i].token * K + list[i].k)];
      const T* g = dy + list[i].token * H;
      for (int64_t j = 0; j < H; ++j)
        dye[i * size_t(H) + size_t(j)] = wk * g[j];
    }
    detail::mlpBackwardImpl(pool, w.experts[e], xe.data(), n, dye.data(), dxe.data(), false,
                            ye.data());
    for (size_t i = 0; i < list.size(); ++i) {
      const int64_t t = list[i].token;
      const T* g = dy + t * H;
      const T* yi = ye.data() + i * size_t(H);
      T dot = 0;
      for (int64_t j = 0; j < H; ++j)
        dot += g[j] * yi[j];
      dweight[size_t(t * K + list[i].k)] = dot;
      T* d = dx + t * H;
      const T* s = dxe.data() + i * size_t(H);
      for (int64_t j = 0; j < H; ++j)
        d[j] += s[j];
    }
  }
  // Through the routing weights into the router logits, then through the frozen router.
  std::vector<T> dlogits(size_t(rows * E));
  for (int64_t t = 0; t < rows; ++t)
    routeBackward(logits.data() + t * E, p, r.chosen.data() + t * K, dweight.data() + t * K,
                  dlogits.data() + t * E);
  detail::matmulDyW(pool, dlogits.data(), rows, w.router, dx, true);

  if (w.shared) {
    if (!w.sharedExpertGate.data) {
      detail::mlpBackwardImpl(pool, *w.shared, x, rows, dy, dx, true, static_cast<T*>(nullptr));
      return;
    }
    std::vector<T> gs = sharedGate(pool, w.sharedExpertGate, x, rows);
    std::vector<T> dys(size_t(rows * H)), ys(size_t(rows * H)), dgl(static_cast<size_t>(rows));
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t j = 0; j < H; ++j)
        dys[size_t(t * H + j)] = gs[size_t(t)] * dy[t * H + j];
    detail::mlpBackwardImpl(pool, *w.shared, x, rows, dys.data(), dx, true, ys.data());
    for (int64_t t = 0; t < rows; ++t) {
      T dot = 0;
      for (int64_t j = 0; j < H; ++j)
        dot += dy[t * H + j] * ys[size_t(t * H + j)];
      dgl[size_t(t)] = dot * gs[size_t(t)] * (T(1) - gs[size_t(t)]);
    }
    detail::matmulDyW(pool, dgl.data(), rows, w.sharedExpertGate, dx, true);
  }
}

#define KT_GRAD_INSTANTIATE(T)                                                                     \
  template void moeForward<T>(ThreadPool&, const MoeRoutingParams&, const MoeWeightsT<T>&,         \
                              const T*, int64_t, T*);                                              \
  template void moeBackward<T>(ThreadPool&, const MoeRoutingParams&, const MoeWeightsT<T>&,        \
                               const T*, int64_t, const T*, T*);
KT_GRAD_INSTANTIATE(float)
KT_GRAD_INSTANTIATE(double)
#undef KT_GRAD_INSTANTIATE

} // namespace kt::cpu::grad
