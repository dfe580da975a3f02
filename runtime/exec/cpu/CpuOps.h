#pragma once
// CPU implementations of the plan's ops (one function per op kind), grouped by file.
#include "kernels/cpu/MoeRouting.h"
#include "kernels/cpu/Rope.h"
#include "runtime/exec/OpContext.h"

namespace kt::cpuops {

void embedding(OpContext& c);
void rmsNorm(OpContext& c);
void linear(OpContext& c);
void rope(OpContext& c);
void swiglu(OpContext& c);
void add(OpContext& c);
void mlp(OpContext& c);
void lmHead(OpContext& c);
void tap(OpContext& c);
void attention(OpContext& c);
void mlaAttention(OpContext& c);
void moe(OpContext& c);
// moe with unmerged LoRA adapters on its experts (Step.adapters): the training forward of
// kernels/cpu/grad over the same weights (LoraOps.cpp).
void moeWithAdapters(OpContext& c);

// The routed experts of the running moe step for tokens x [T, H] routed to `chosen` [T, K] with
// `weight` [T, K] (an expert id of -1 is skipped: it runs elsewhere): adds sum_k weight *
// expert(x) into out [T, H], with the CPU's fused expert
// kernel (NUMA-local tasks over every expert's rows). Hybrid plans call it from the GPU moe op.
void routedExperts(OpContext& c, const int32_t* chosen, const float* weight, int64_t T, int K,
                   const float* x, int64_t H, float* out);
// The same over explicit expert matrices: expert(e) gives routed expert e's gate, up and down
// (e < numExperts) as the weight store would; what kt-rt probe times at prefill sizes.
struct ExpertMatrices {
  cpu::MatrixView gate, up, down;
};
void routedExpertsOver(ThreadPool& pool, const std::function<ExpertMatrices(int)>& expert,
                       int numExperts, const int32_t* chosen, const float* weight, int64_t T, int K,
                       const float* x, int64_t H, float* out);

cpu::RopeParams ropeParams(const plan::Rope& r);
// The plan's MoE attributes as the routing kernel's parameters (inference and training).
cpu::MoeRoutingParams moeRoutingParams(const plan::MoeAttrs& a);
// silu(g) * u, the SwiGLU activation of every MLP and expert.
void swigluInPlace(float* g, const float* u, int64_t n);

// glibc malloc settings the CPU ops rely on (freed activations stay in the heap instead of being
// unmapped, so the next step does not page-fault on fresh zeroed pages); set once per process by
// registerCpuOps, and by anything that times the ops without an Executor (kt-rt probe).
void keepFreedMemoryInHeap();

// fn(0, n) on the calling thread when the loop touches fewer than ~64K values (`elements`),
// else pool.parallelFor(n, 1, fn). Each parallel loop is a barrier: in decode, small
// per-expert/per-head preparation loops cost more in hand-over (and, on a busy machine, in waiting
// for a descheduled worker) than their work.
void smallLoop(ThreadPool& pool, int64_t n, int64_t elements,
               const std::function<void(int64_t, int64_t)>& fn);

} // namespace kt::cpuops
