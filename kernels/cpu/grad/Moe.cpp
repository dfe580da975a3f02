// MoE layer as runtime/exec/cpu/MoeOp.cpp computes it, with adapters on every expert:
//   y_t = Σ_k w_tk · E_{e_tk}(x_t)  +  γ_t · S(x_t),   γ_t = σ(x_t·g) (Qwen2-MoE) or 1
// Backward (router, bias and g frozen), with dw_tk = dy_t · E_{e_tk}(x_t) fed to routeBackward:
//   dx_t = Σ_k w_tk · dE(x_t; dy_t)             expert paths (adapter grads accumulate)
//        + Σ_i dl_ti · W_router[i]              routing weights through the router logits
//        + dS(x_t; γ_t dy_t) + (dy_t·S(x_t)) γ_t(1-γ_t) · g
// Tokens are grouped by expert so each expert's weights are streamed once for all its tokens.
#include "kernels/cpu/grad/Detail.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cmath>
#include <utility>

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

// Runs every expert that has tokens and adds its per-token results into out[rows, H]:
// out[token] += scale · result, experts in ascending order (the order of a serial loop, so results
// do not depend on the number of threads). Experts run in parallel, one expert per task on a
// single-threaded pool: an expert sees ~rows·topK/E tokens, too few to split its products over
// threads without the pool's dispatches costing more than the products. Experts go in waves of at
// most kWaveSlots token slots so that the per-slot results need bounded scratch memory.
//   run(serial, e, result[n_e, H]) computes expert e's results for its tokens (byExpert order);
//   slot(e, i) -> (token, scale) of its i-th token.
constexpr int64_t kWaveSlots = 4096;

template <class T, class Run, class SlotFn>
void forEachExpertWave(ThreadPool& pool, const Routing& r, int64_t H, const Run& run,
                       const SlotFn& slot, T* out) {
  std::vector<int> experts;
  for (size_t e = 0; e < r.byExpert.size(); ++e)
    if (!r.byExpert[e].empty())
      experts.push_back(int(e));
  ThreadPool serial(1); // runs every parallelFor inline; shareable (it holds no state)
  std::vector<T> results;
  std::vector<int64_t> offset;
  for (size_t i = 0; i < experts.size();) {
    size_t j = i;
    int64_t slots = 0;
    offset.clear();
    while (j < experts.size() &&
           (j == i || slots + int64_t(r.byExpert[size_t(experts[j])].size()) <= kWaveSlots)) {
      offset.push_back(slots);
      slots += int64_t(r.byExpert[size_t(experts[j])].size());
      ++j;
    }
    results.resize(size_t(slots * H));
    pool.parallelFor(int64_t(j - i), 1, [&](int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q)
        run(serial, experts[i + size_t(q)], results.data() + offset[size_t(q)] * H);
    });
    // Column strips in parallel; within a strip, experts and their tokens in order.
    const int64_t strips = (H + 255) / 256;
    pool.parallelFor(strips, 1, [&](int64_t b, int64_t e) {
      for (int64_t st = b; st < e; ++st) {
        const int64_t c0 = st * 256, cn = std::min<int64_t>(256, H - c0);
        for (size_t q = 0; q < j - i; ++q) {
          const int ex = experts[i + q];
          for (int64_t s = 0; s < int64_t(r.byExpert[size_t(ex)].size()); ++s) {
            const T* res = results.data() + (offset[q] + s) * H;
            const auto [token, scale] = slot(ex, s);
            T* o = out + token * H + c0;
            for (int64_t c = 0; c < cn; ++c)
              o[c] += scale * res[c0 + c];
          }
        }
      }
    });
    i = j;
  }
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
  forEachExpertWave(
      pool, r, H,
      [&](ThreadPool& serial, int e, T* ye) {
        const auto& list = r.byExpert[size_t(e)];
        std::vector<T> xe = gather(x, H, list);
        mlpForward(serial, w.experts[e], xe.data(), int64_t(list.size()), ye);
      },
      [&](int e, int64_t i) {
        const Slot& s = r.byExpert[size_t(e)][size_t(i)];
        return std::make_pair(s.token, weight[size_t(s.token * K + s.k)]);
      },
      y);
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
  forEachExpertWave(
      pool, r, H,
      [&](ThreadPool& serial, int e, T* dxe) {
        const auto& list = r.byExpert[size_t(e)];
        const int64_t n = int64_t(list.size());
        std::vector<T> xe = gather(x, H, list), dye(xe.size());
        bool normalWeights = true;
        for (size_t i = 0; i < list.size(); ++i) {
          const T wk = weight[size_t(list[i].token * K + list[i].k)];
          normalWeights = normalWeights && std::isnormal(wk) && std::fabs(wk) >= T(1e-6);
          const T* g = dy + list[i].token * H;
          for (int64_t j = 0; j < H; ++j)
            dye[i * size_t(H) + size_t(j)] = wk * g[j];
        }
        // dweight of each (token, slot) is written by the one expert the slot chose:
        // dy·E(x) = (dye·E(x)) / w with dye·E(x) from the backward's own dh (no recomputed down
        // projection, a sixth of the expert's products); a w below 1e-6 (where w·dy could lose
        // precision to underflow) recomputes E(x) instead.
        std::vector<T> dots(list.size()), ye(normalWeights ? 0 : xe.size());
        detail::mlpBackwardImpl(serial, w.experts[e], xe.data(), n, dye.data(), dxe, false,
                                normalWeights ? nullptr : ye.data(),
                                normalWeights ? dots.data() : nullptr);
        for (size_t i = 0; i < list.size(); ++i) {
          T dot = 0;
          if (normalWeights) {
            dot = dots[i] / weight[size_t(list[i].token * K + list[i].k)];
          } else {
            const T* g = dy + list[i].token * H;
            const T* yi = ye.data() + i * size_t(H);
            for (int64_t j = 0; j < H; ++j)
              dot += g[j] * yi[j];
          }
          dweight[size_t(list[i].token * K + list[i].k)] = dot;
        }
      },
      [&](int e, int64_t i) {
        return std::make_pair(r.byExpert[size_t(e)][size_t(i)].token, T(1));
      },
      dx);
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
