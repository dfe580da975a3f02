#include "kernels/cpu/Linear.h"
#include "kernels/cpu/MoeRouting.h"
#include "kernels/cpu/quant/QuantMatmul.h"
#include "runtime/exec/RouteTap.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/exec/cpu/NumaPlacement.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <thread>

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

// A (work item, row block, phase) list over all experts, so that one parallel loop keeps every
// thread busy whether the batch has 1 token (few experts, many row blocks) or thousands (many
// experts).
struct Task {
  int work;
  int64_t r0, r1;
  bool down; // false: gate and up rows [r0, r1); true: down rows [r0, r1)
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
// matrix. Appends one phase's tasks to byNode[node].
//
// Tasks are sized by work (taskWork): weight elements x the expert's tokens. In decode (one token
// each) that is the bytes streamed — a shared expert's down matrix (K = 2 x 1408 in DeepSeek-V2)
// is twice a routed one's, and one oversized last task left a thread idle; in a prefill it is the
// FLOPs, and routing is uneven (the busiest expert of a 512-token prompt gets 2-3x the mean rows),
// so blocks sized by weights alone left the busiest experts as single long tasks at the end.
int64_t taskWork(const ExpertWork& w, bool down, int64_t rows) {
  return rows * (down ? w.down.cols : w.gate.cols) * std::max<int64_t>(1, int64_t(w.tokens.size()));
}

void rowTasks(const std::vector<ExpertWork>& works, bool down, int threads, int nodes,
              std::vector<std::vector<Task>>& byNode) {
  auto mat = [&](const ExpertWork& w) { return down ? w.down : w.gate; };
  auto work = [&](const ExpertWork& w) { return taskWork(w, down, mat(w).rows); };
  int64_t total = 0;
  for (const ExpertWork& w : works)
    total += work(w);
  const int64_t perTask = std::max<int64_t>(1, total / (int64_t(threads) * 4));
  int spread = 0; // round-robin node for the blocks of node-less (shared) experts
  for (int w = 0; w < int(works.size()); ++w) {
    const int64_t rows = mat(works[size_t(w)]).rows;
    // Near-equal blocks per matrix in whole GEMV row units (64 rows: the one-token kernel's
    // full-speed unit), so no task ends in a slow single-panel remainder.
    const int64_t unit = cpu::quant::kGemvRowUnit;
    int64_t n = std::max<int64_t>((work(works[size_t(w)]) + perTask - 1) / perTask,
                                  works[size_t(w)].node < 0 ? std::min(nodes, 4) : 1);
    n = std::max<int64_t>(1, std::min(n, rows / unit));
    const int64_t block = ((rows + n - 1) / n + unit - 1) / unit * unit;
    for (int64_t r = 0; r < rows; r += block) {
      const int node = works[size_t(w)].node >= 0 ? works[size_t(w)].node : spread++ % nodes;
      byNode[size_t(node)].push_back({w, r, std::min(rows, r + block), down});
    }
  }
}

// The expert FFN of every work item as ONE parallel region per MoE layer: each node's task list
// holds all gate/up row blocks, then all down row blocks. A down task waits until its expert's
// gate/up tasks are done; the thread that finishes an expert's last gate/up block applies SwiGLU
// and prepares the down input. Compared with a barrier per phase (gate/up, activation, down) this
// removes two fork/joins per layer and the idle tail of the gate/up phase: one thread streams the
// next expert's down matrix while the other finishes a gate/up block, so memory stays busy.
//
// No deadlock: in every node's list all gate/up tasks precede all down tasks, lists are claimed in
// order, and a thread steals from another node's list only once its own is fully claimed. So a
// thread waits only after every gate/up task of the list it is taking from has been claimed;
// gate/up tasks wait for nothing, so each claimed one finishes, and an unclaimed one (a shared
// expert's block in another node's list) is reached by that node's threads before they can wait.
NodeTasks expertTasks(const std::vector<ExpertWork>& works, int threads, int nodes) {
  std::vector<std::vector<Task>> up(static_cast<size_t>(nodes)), down(static_cast<size_t>(nodes));
  rowTasks(works, false, threads, nodes, up);
  rowTasks(works, true, threads, nodes, down);
  NodeTasks out;
  for (int n = 0; n < nodes; ++n) {
    auto size = [&](const Task& t) { return taskWork(works[size_t(t.work)], t.down, t.r1 - t.r0); };
    // Gate/up: largest first, so the blocks left at the end of the phase are the small ones.
    std::vector<Task>& u = up[size_t(n)];
    std::stable_sort(u.begin(), u.end(),
                     [&](const Task& a, const Task& b) { return size(a) > size(b); });
    // Down: in the order their experts' gate/up blocks finish (position of each expert's last
    // gate/up block), so the first down tasks rarely wait; ties largest first.
    std::vector<int64_t> lastUp(works.size(), -1);
    for (int64_t i = 0; i < int64_t(u.size()); ++i)
      lastUp[size_t(u[size_t(i)].work)] = i;
    std::vector<Task>& d = down[size_t(n)];
    std::stable_sort(d.begin(), d.end(), [&](const Task& a, const Task& b) {
      if (lastUp[size_t(a.work)] != lastUp[size_t(b.work)])
        return lastUp[size_t(a.work)] < lastUp[size_t(b.work)];
      return size(a) > size(b);
    });
    out.counts.push_back(int64_t(u.size() + d.size()));
    out.tasks.insert(out.tasks.end(), u.begin(), u.end());
    out.tasks.insert(out.tasks.end(), d.begin(), d.end());
  }
  return out;
}

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Work items over many tokens (the shared expert: every token; a busy routed expert of a long
// prompt) split into token chunks of their own. An item's gather, activation preparation and
// down-input preparation each run on one thread (the thread that claims the item, or that
// finishes its last gate/up block): on 16 Xeon threads a 2048-token prompt's shared expert took
// the DeepSeek-V2-Lite MoE layer from 51 to 93 ms where its FLOPs add a third (kt_bench_moe,
// docs/benchmarks.md). Chunks of at most max(128, 2T / threads) tokens prepare in parallel, for
// reading the item's weights once per chunk. Chunks stay in place, so each token's contributions
// are still combined in the same order; 2 threads never split a prompt of up to 128 x 2 tokens.
void splitLargeWorks(std::vector<ExpertWork>& works, int64_t T, int threads) {
  const int64_t most = std::max<int64_t>(128, (2 * T + threads - 1) / std::max(1, threads));
  if (std::none_of(works.begin(), works.end(),
                   [&](const ExpertWork& w) { return int64_t(w.tokens.size()) > most; }))
    return;
  std::vector<ExpertWork> split;
  for (ExpertWork& w : works) {
    const int64_t n = int64_t(w.tokens.size());
    if (n <= most) {
      split.push_back(std::move(w));
      continue;
    }
    const int64_t chunks = (n + most - 1) / most;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
      ExpertWork part;
      part.gate = w.gate;
      part.up = w.up;
      part.down = w.down;
      part.node = w.node;
      part.tokens.assign(w.tokens.begin() + b, w.tokens.begin() + e);
      part.weights.assign(w.weights.begin() + b, w.weights.begin() + e);
      split.push_back(std::move(part));
    }
  }
  works = std::move(split);
}

// Runs the SwiGLU experts of all work items (one parallel region, see expertTasks), then the
// weighted combine.
void runExperts(ThreadPool& pool, std::vector<ExpertWork>& works, const float* x, int64_t H,
                float* out, int64_t T) {
  splitLargeWorks(works, T, pool.size());
  int64_t routedRows = 0; // token rows over all work items
  for (const ExpertWork& w : works)
    routedRows += int64_t(w.tokens.size());
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
      // Same activations for gate and up when both share a packed format: prepare them once.
      if (w.up.packed != w.gate.packed || w.up.cols != w.gate.cols)
        cpu::prepareInput(w.up, w.x.data(), n, &w.inUp);
    }
  });
  const NodeTasks plan = expertTasks(works, pool.size(), pool.nodes());
  // Per expert: gate/up blocks still running, and whether its down input is ready.
  std::vector<int64_t> upBlocks(works.size(), 0);
  for (const Task& t : plan.tasks)
    if (!t.down)
      ++upBlocks[size_t(t.work)];
  std::unique_ptr<std::atomic<int64_t>[]> upLeft(new std::atomic<int64_t>[works.size()]);
  std::unique_ptr<std::atomic<bool>[]> downReady(new std::atomic<bool>[works.size()]);
  for (size_t i = 0; i < works.size(); ++i) {
    upLeft[i].store(upBlocks[i], std::memory_order_relaxed);
    downReady[i].store(false, std::memory_order_relaxed);
  }
  const std::vector<Task>& tasks = plan.tasks;
  pool.parallelForNodes(plan.counts, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const Task& t = tasks[size_t(i)];
      ExpertWork& w = works[size_t(t.work)];
      if (!t.down) {
        const cpu::PreparedInput& inUp = w.inUp.x ? w.inUp : w.inGate;
        cpu::linearRows(w.gate, w.inGate, w.g.data(), t.r0, t.r1);
        cpu::linearRows(w.up, inUp, w.u.data(), t.r0, t.r1);
        // SwiGLU of this block's columns, here: done by the expert's last block alone, a shared
        // expert's 512 x 2816 values (a sigmoid each) kept the other 15 Xeon threads waiting on
        // its down blocks (the CPU plan's MoE ran at half the rate of the same routed experts
        // without the shared ones). Elementwise: the same values whoever computes them.
        const int64_t inter = w.gate.rows;
        for (int64_t r = 0; r < int64_t(w.tokens.size()); ++r)
          swigluInPlace(w.g.data() + r * inter + t.r0, w.u.data() + r * inter + t.r0, t.r1 - t.r0);
        if (upLeft[size_t(t.work)].fetch_sub(1, std::memory_order_acq_rel) == 1) {
          cpu::prepareInput(w.down, w.g.data(), int64_t(w.tokens.size()), &w.inDown);
          downReady[size_t(t.work)].store(true, std::memory_order_release);
        }
        continue;
      }
      // Another thread is finishing this expert's last gate/up block (already claimed: see
      // expertTasks); on a busy machine it may be descheduled, so yield after a while.
      for (int spins = 0; !downReady[size_t(t.work)].load(std::memory_order_acquire); ++spins) {
        cpuRelax();
        if (spins > 4096)
          std::this_thread::yield();
      }
      cpu::linearRows(w.down, w.inDown, w.y.data(), t.r0, t.r1);
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

// Groups the tokens by routed expert so each expert's weights are streamed once for all its
// tokens: one work item per chosen expert, in order of first use (-1 entries are skipped).
std::vector<ExpertWork> routedWorks(const std::function<ExpertMatrices(int)>& expert, int E,
                                    int nodes, const int32_t* chosen, const float* weight,
                                    int64_t T, int K) {
  std::vector<int> workOf(static_cast<size_t>(E), -1);
  std::vector<ExpertWork> works;
  for (int64_t t = 0; t < T; ++t)
    for (int k = 0; k < K; ++k) {
      const int e = chosen[t * K + k];
      if (e < 0) // run elsewhere (a split layer's GPU experts)
        continue;
      if (workOf[size_t(e)] < 0) {
        workOf[size_t(e)] = int(works.size());
        const ExpertMatrices m = expert(e);
        works.push_back(
            {m.gate, m.up, m.down, expertNode(e, E, nodes), {}, {}, {}, {}, {}, {}, {}, {}, {}});
      }
      works[size_t(workOf[size_t(e)])].tokens.push_back(t);
      works[size_t(workOf[size_t(e)])].weights.push_back(weight[t * K + k]);
    }
  return works;
}

// The plan step's routed experts (its stacked gate/up/down weights).
std::vector<ExpertWork> routedWorks(OpContext& c, const int32_t* chosen, const float* weight,
                                    int64_t T, int K) {
  using namespace plan::slots;
  auto expert = [&](int e) {
    return ExpertMatrices{c.expert(Gate, e), c.expert(Up, e), c.expert(Down, e)};
  };
  return routedWorks(expert, c.step.attrs_as_MoeAttrs()->num_experts(), c.pool.nodes(), chosen,
                     weight, T, K);
}
} // namespace

void moe(OpContext& c) {
  if (c.hasAdapters()) // unmerged LoRA adapters (LoraOps.cpp): the one hook in this file
    return moeWithAdapters(c);
  using namespace plan::slots;
  const auto& a = *c.step.attrs_as_MoeAttrs();
  const Activation& x = c.in(0);
  const int64_t T = x.rows, H = x.cols;
  const int E = a.num_experts(), K = a.experts_per_token();
  cpu::MoeRoutingParams rp = moeRoutingParams(a);

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits(size_t(T * E));
  cpu::linear(c.pool, x.f.data(), T, c.w(Router), nullptr, logits.data());
  std::vector<float> bias;
  if (c.has(CorrectionBias)) {
    bias.resize(size_t(E));
    c.w(CorrectionBias).rowToF32(0, bias.data());
  }
  std::vector<int32_t> chosen(size_t(T * K));
  std::vector<float> weight(size_t(T * K));
  // Tokens route independently: a prefill's over the threads (Qwen3-30B-A3B's router part took
  // 2.5 ms a layer at 512 tokens on 16 Xeon threads where its product should take ~0.9: this
  // loop ran on one of them).
  auto route = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      cpu::routeToken(logits.data() + t * E, bias.empty() ? nullptr : bias.data(), rp,
                      chosen.data() + t * K, weight.data() + t * K);
  };
  if (T >= 64)
    c.pool.parallelFor(T, 16, route);
  else
    route(0, T);
  tapRoutes(c, a, chosen.data(), T, K); // kt-tune counts expert activations from this tap

  const auto t1 = std::chrono::steady_clock::now();
  c.timedPart("router", std::chrono::duration<double>(t1 - t0).count()); // kt-rt bench --profile
  std::vector<ExpertWork> works = routedWorks(c, chosen.data(), weight.data(), T, K);
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
  c.timedPart("experts",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
}

} // namespace kt::cpuops

namespace kt::cpuops {

void routedExperts(OpContext& c, const int32_t* chosen, const float* weight, int64_t T, int K,
                   const float* x, int64_t H, float* out) {
  std::vector<ExpertWork> works = routedWorks(c, chosen, weight, T, K);
  runExperts(c.pool, works, x, H, out, T);
}

void routedExpertsOver(ThreadPool& pool, const std::function<ExpertMatrices(int)>& expert,
                       int numExperts, const int32_t* chosen, const float* weight, int64_t T, int K,
                       const float* x, int64_t H, float* out) {
  std::vector<ExpertWork> works =
      routedWorks(expert, numExperts, pool.nodes(), chosen, weight, T, K);
  runExperts(pool, works, x, H, out, T);
}

} // namespace kt::cpuops
