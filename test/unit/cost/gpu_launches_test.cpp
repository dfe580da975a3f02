// GpuLaunches' decode form (compiler/cost/GpuLaunches.h): the CUDA backend's moe op runs the
// routed experts of up to kMoeDecodeMaxTokens tokens as a fixed number of fused kernels
// (kernels/cuda/MoeDecode.cu) and lm_head skips its gather when every row is sampled; summing a
// unit's ops keeps both forms.
#include "compiler/cost/GpuLaunches.h"

#include <gtest/gtest.h>

using namespace kt::cost;

TEST(GpuLaunchesDecode, MoeDecodeFormIsFixedPerStep) {
  // DeepSeek-V2-Lite, bf16: router (GEMM + rounding) + top-k + combine + shared (2 fused).
  const GpuLaunches moe = moeLaunches(true, true, false);
  const GpuLaunches d = moe.at(1);
  EXPECT_EQ(d.perStep, 2 + 1 + 1 + 2);
  EXPECT_EQ(d.shared, 2);
  EXPECT_EQ(d.hostSyncs, 0);        // routed experts on the GPU: no round trip
  EXPECT_EQ(d.perTouchedExpert, 0); // every pair in the same 2 launches
  EXPECT_EQ(d.gpuExpertsLaunches, 2);
  EXPECT_EQ(d.gpuExpertsSyncs, 0);
  EXPECT_EQ(d.hostExpertsSyncs, 1); // experts on the host: the routing comes back once
  EXPECT_EQ(moeLaunches(false, true, true).at(8).shared, 2 + 1 + 1); // Qwen2's gate
  // Past kMoeDecodeMaxTokens: the grouped prefill form, unchanged.
  const GpuLaunches p = moe.at(kMoeDecodeMaxTokens + 1);
  EXPECT_EQ(p.perStep, moe.perStep);
  EXPECT_EQ(p.perTouchedExpert, 9);
  EXPECT_EQ(p.hostSyncs, 1);
}

TEST(GpuLaunchesDecode, SumKeepsBothForms) {
  GpuLaunches unit;
  GpuLaunches norm;
  norm.perStep = glueLaunches("rms_norm");
  unit += norm;
  unit += moeLaunches(false, true, false);
  GpuLaunches add;
  add.perStep = glueLaunches("add");
  unit += add;
  // Prefill: the glue plus the moe's grouped form; decode: the glue plus its fused form.
  EXPECT_EQ(unit.at(100).perStep, 1 + moeLaunches(false, true, false).perStep + 1);
  EXPECT_EQ(unit.at(1).perStep, 1 + (1 + 1 + 1 + 2) + 1);
  EXPECT_EQ(unit.at(1).gpuExpertsLaunches, 2);
  EXPECT_EQ(lmHeadLaunches(true).at(1).perStep, 2);   // no gather at decode
  EXPECT_EQ(lmHeadLaunches(true).at(100).perStep, 3); // gather + rounding + GEMM
  EXPECT_EQ(lmHeadLaunches(true).hostSyncs, 0);       // row ids uploaded once per list
}

// Decode-sized attention splits over the keys (kernels/cuda/Attention.cu): one merge launch per
// sequence more; prefill and the per-step launches unchanged, and a unit's sum keeps both.
TEST(GpuLaunchesDecode, AttentionAddsTheSplitMerge) {
  const GpuLaunches mla = mlaLaunches(true, false), gqa = attentionLaunches(false, 0, true);
  EXPECT_EQ(mla.at(1).perSequence, 3 + 1); // latent + rope key appends, kernel, merge
  EXPECT_EQ(mla.at(kAttentionSplitMaxTokens).perSequence, 4);
  EXPECT_EQ(mla.at(kAttentionSplitMaxTokens + 1).perSequence, 3);
  EXPECT_EQ(mla.at(1).perStep, mla.perStep);
  EXPECT_EQ(gqa.at(1).perSequence, 4);
  EXPECT_EQ(gqa.at(100).perSequence, 3);
  EXPECT_EQ(gqa.at(1).perStep, gqa.perStep);
  GpuLaunches unit;
  GpuLaunches norm;
  norm.perStep = glueLaunches("rms_norm");
  unit += norm;
  unit += mla;
  EXPECT_EQ(unit.at(1).perStep, 1 + mla.perStep);
  EXPECT_EQ(unit.at(1).perSequence, 4);
  EXPECT_EQ(unit.at(100).perSequence, 3);
}
