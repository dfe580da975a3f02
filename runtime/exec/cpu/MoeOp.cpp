#include "kernels/cpu/Linear.h"
#include "kernels/cpu/MoeRouting.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/exec/cpu/NumaPlacement.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <cmath>

namespace kt::cpuops {

cpu::MoeRoutingParams moeRoutingParams(const plan::MoeAttrs& a) {
  cpu::MoeRoutingParams p;
  p.numExperts = a.num_experts();
  p.topK = a.experts_per_token();
  p.scoring = a.scoring() == plan::MoeScoring::Sigmoid ? cpu::MoeScoring::Sigmoid
                                                       : cpu::MoeScoring::Softmax;
  p.method = a.topk_method() == plan::MoeTopk::Greedy ? cpu::MoeTopk::Greedy
             : a.topk_method() == plan::MoeTopk::GroupLimitedGreedy
                 ? cpu::MoeTopk::GroupLimitedGreedy
                 : cpu::MoeTopk::NoauxTc;
  p.nGroup = a.n_group();
  p.topkGroup = a.topk_group();
  p.normTopkProb = a.norm_topk_prob();
  p.routedScalingFactor = a.routed_scaling_factor();
  return p;
}

namespace {

// One expert's share of the batch: its tokens, their routing weights and the intermediate values.
struct ExpertWork {
  cpu::MatrixView gate, up, down;
  int node; // NUMA node holding this expert's weights; -1: none (shared expert), spread rows
  std::vector<int64_t> tokens;
  std::vector<float>
      weights; // routing weight per token (shared experts: 1, or Qwen2's sigmoid gate)
  std::vector<float> x, g, u, y;
  cpu::PreparedInput inGate, inUp, inDown;
};

// A (work item, row block) list over all experts, so that one parallel loop keeps every thread
// busy whether the batch has 1 token (few experts, many row blocks) or thousands (many experts).
struct Task {
  int work;
  int64_t r0, r1;
};
// Tasks grouped by node (a node's tasks read its own experts), for ThreadPool::parallelForNodes.
struct NodeTasks {
  std::vector<Task> tasks;
  std::vector<int64_t> counts;
};
// Row blocks are as large as load balance allows (about 4 tasks per thread, at least 64 rows, a
// multiple of the kernels' 16-row panels): each task start costs the GEMV kernel a cold start
// (its first panel's scales and lines are fetched with nothing to overlap them), which with
// 64-row blocks made decode MoE run at a third of the bandwidth the same kernel reaches on a long
// matrix.
NodeTasks rowTasks(const std::vector<ExpertWork>& works, bool down, int threads, int nodes) {
  // Sized by weight elements, not rows: a shared expert's down matrix (K = 2 x 1408 in
  // DeepSeek-V2) is twice a routed one's, and one oversized last task left a thread idle.
  auto mat = [&](const ExpertWork& w) { return down ? w.down : w.gate; };
  int64_t total = 0;
  for (const ExpertWork& w : works)
    total += mat(w).rows * mat(w).cols;
  const int64_t perTask = std::max<int64_t>(1, total / (int64_t(threads) * 4));
  std::vector<std::vector<Task>> byNode(static_cast<size_t>(nodes));
  int spread = 0; // round-robin node for the blocks of node-less (shared) experts
  for (int w = 0; w < int(works.size()); ++w) {
    const int64_t rows = mat(works[size_t(w)]).rows, cols = mat(works[size_t(w)]).cols;
    // Equal blocks per matrix (no small remainder task), at least 64 rows.
    int64_t n = std::max<int64_t>((rows * cols + perTask - 1) / perTask,
                                  works[size_t(w)].node < 0 ? std::min(nodes, 4) : 1);
    n = std::max<int64_t>(1, std::min(n, rows / 64));
    const int64_t block = ((rows + n - 1) / n + 15) / 16 * 16;
    for (int64_t r = 0; r < rows; r += block) {
      const int node = works[size_t(w)].node >= 0 ? works[size_t(w)].node : spread++ % nodes;
      byNode[size_t(node)].push_back({w, r, std::min(rows, r + block)});
    }
  }
  NodeTasks out;
  for (auto& v : byNode) {
    // Largest first, so the tasks left at the end of a phase are the small ones.
    std::stable_sort(v.begin(), v.end(), [&](const Task& x, const Task& y) {
      return (x.r1 - x.r0) * mat(works[size_t(x.work)]).cols >
             (y.r1 - y.r0) * mat(works[size_t(y.work)]).cols;
    });
    out.counts.push_back(int64_t(v.size()));
    out.tasks.insert(out.tasks.end(), v.begin(), v.end());
  }
  return out;
}

// Runs the SwiGLU experts of all work items with three parallel phases (gate+up, activation,
// down) instead of three parallel loops per expert, then the weighted combine.
void runExperts(ThreadPool& pool, std::vector<ExpertWork>& works, const float* x, int64_t H,
                float* out, int64_t T) {
  int64_t routedRows = 0, inter = 0; // token rows over all work items, and their activations
  for (const ExpertWork& w : works) {
    routedRows += int64_t(w.tokens.size());
    inter += int64_t(w.tokens.size()) * w.gate.rows;
  }
  smallLoop(pool, int64_t(works.size()), routedRows * H, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      ExpertWork& w = works[size_t(i)];
      const int64_t n = int64_t(w.tokens.size());
      w.x.resize(size_t(n * H));
      for (int64_t r = 0; r < n; ++r)
        std::copy_n(x + w.tokens[size_t(r)] * H, H, w.x.data() + r * H);
      w.g.resize(size_t(n * w.gate.rows));
      w.u.resize(size_t(n * w.up.rows));
      w.y.resize(size_t(n * H));
      cpu::prepareInput(w.gate, w.x.data(), n, &w.inGate);
      cpu::prepareInput(w.up, w.x.data(), n, &w.inUp);
    }
  });
  NodeTasks upTasks = rowTasks(works, false, pool.size(), pool.nodes());
  const std::vector<Task>& up = upTasks.tasks;
  pool.parallelForNodes(upTasks.counts, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      ExpertWork& w = works[size_t(up[size_t(i)].work)];
      cpu::linearRows(w.gate, w.inGate, w.g.data(), up[size_t(i)].r0, up[size_t(i)].r1);
      cpu::linearRows(w.up, w.inUp, w.u.data(), up[size_t(i)].r0, up[size_t(i)].r1);
    }
  });
  smallLoop(pool, int64_t(works.size()), inter, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      ExpertWork& w = works[size_t(i)];
      swigluInPlace(w.g.data(), w.u.data(), int64_t(w.g.size()));
      cpu::prepareInput(w.down, w.g.data(), int64_t(w.tokens.size()), &w.inDown);
    }
  });
  NodeTasks downTasks = rowTasks(works, true, pool.size(), pool.nodes());
  const std::vector<Task>& down = downTasks.tasks;
  pool.parallelForNodes(downTasks.counts, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      ExpertWork& w = works[size_t(down[size_t(i)].work)];
      cpu::linearRows(w.down, w.inDown, w.y.data(), down[size_t(i)].r0, down[size_t(i)].r1);
    }
  });
  // Combine per token (each output row written by one thread): sum of weight * expert output.
  std::vector<std::vector<std::pair<int, int64_t>>> contributions(static_cast<size_t>(T));
  for (int w = 0; w < int(works.size()); ++w)
    for (int64_t r = 0; r < int64_t(works[size_t(w)].tokens.size()); ++r)
      contributions[size_t(works[size_t(w)].tokens[size_t(r)])].push_back({w, r});
  smallLoop(pool, T, routedRows * H, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float* o = out + t * H;
      for (auto [w, r] : contributions[size_t(t)]) {
        const ExpertWork& ew = works[size_t(w)];
        const float scale = ew.weights[size_t(r)];
        const float* yr = ew.y.data() + r * H;
        for (int64_t i = 0; i < H; ++i)
          o[i] += scale * yr[i];
      }
    }
  });
}
} // namespace

void moe(OpContext& c) {
  using namespace plan::slots;
  const auto& a = *c.step.attrs_as_MoeAttrs();
  const Activation& x = c.in(0);
  const int64_t T = x.rows, H = x.cols;
  const int E = a.num_experts(), K = a.experts_per_token();
  cpu::MoeRoutingParams rp = moeRoutingParams(a);

  std::vector<float> logits(size_t(T * E));
  cpu::linear(c.pool, x.f.data(), T, c.w(Router), nullptr, logits.data());
  std::vector<float> bias;
  if (c.has(CorrectionBias)) {
    bias.resize(size_t(E));
    c.w(CorrectionBias).rowToF32(0, bias.data());
  }
  std::vector<int> chosen(size_t(T * K));
  std::vector<float> weight(size_t(T * K));
  for (int64_t t = 0; t < T; ++t)
    cpu::routeToken(logits.data() + t * E, bias.empty() ? nullptr : bias.data(), rp,
                    chosen.data() + t * K, weight.data() + t * K);

  // Group tokens by expert so each expert's weights are streamed once for all its tokens.
  std::vector<int> workOf(static_cast<size_t>(E), -1);
  std::vector<ExpertWork> works;
  for (int64_t t = 0; t < T; ++t)
    for (int k = 0; k < K; ++k) {
      int e = chosen[size_t(t * K + k)];
      if (workOf[size_t(e)] < 0) {
        workOf[size_t(e)] = int(works.size());
        works.push_back({c.expert(Gate, e),
                         c.expert(Up, e),
                         c.expert(Down, e),
                         expertNode(e, E, c.pool.nodes()),
                         {},
                         {},
                         {},
                         {},
                         {},
                         {},
                         {},
                         {},
                         {}});
      }
      works[size_t(workOf[size_t(e)])].tokens.push_back(t);
      works[size_t(workOf[size_t(e)])].weights.push_back(weight[size_t(t * K + k)]);
    }
  // Shared experts run with the routed ones, over every token.
  if (c.has(SharedGate)) {
    ExpertWork shared{
        c.w(SharedGate), c.w(SharedUp), c.w(SharedDown), -1, {}, {}, {}, {}, {}, {}, {}, {}, {}};
    shared.weights.assign(size_t(T), 1.0f);
    if (c.has(SharedExpertGate)) { // Qwen2-MoE: sigmoid(x . w) scales the shared expert
      cpu::linear(c.pool, x.f.data(), T, c.w(SharedExpertGate), nullptr, shared.weights.data());
      for (float& g : shared.weights)
        g = 1.0f / (1.0f + std::exp(-g));
    }
    for (int64_t t = 0; t < T; ++t)
      shared.tokens.push_back(t);
    works.push_back(std::move(shared));
  }
  Activation& out = c.out(0);
  out.resize(T, H);
  runExperts(c.pool, works, x.f.data(), H, out.f.data(), T);
}

} // namespace kt::cpuops
