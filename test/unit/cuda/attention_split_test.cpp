// Decode attention split over the keys (kernels/cuda/Attention.cu, "flash-decoding") against the
// scalar CPU references (kernels/cpu/Attention: gqaAttentionRef, mlaAttentionRef): GQA and absorbed
// MLA, context lengths around the 64/128-position boundaries and past 4,096, 1 to 32 heads, the
// automatic split count and forced ones (64 splits of a 1-position context: all but one empty),
// the position read from device memory under a split count fixed as in a replayed CUDA graph, and
// no write past the partials' scratch. Without a GPU only the host-side split rule is checked.
#include "kernels/cpu/Attention.h"
#include "kernels/cuda/DeviceKernels.h"
#include "runtime/support/ThreadPool.h"
#include "test/unit/cuda/CudaTestUtil.h"
#include "test/unit/cuda/MlaProblem.h"

#include <algorithm>
#include <cmath>

using namespace kt;
using kt::cudatest::Dev;
using kt::cudatest::maxRelDiff;
using kt::cudatest::MlaProblem;
using kt::cudatest::mlaProblem;
using kt::cudatest::MlaShape;
using kt::cudatest::poisonPast;
using kt::cudatest::randomVector;

namespace {

constexpr float kGuard = 12345.f;     // scratch past what the kernel may write
constexpr int64_t kGuardFloats = 256; // guard floats after the partials

// Runs `a` with `splits` (0: automatic) on partials sized for it, checks the launch count and the
// guard after the scratch, and returns the output.
std::vector<float> runSplit(cuda::AttentionArgs a, int splits, size_t outFloats, Dev& out) {
  const int64_t perSplit = int64_t(a.heads) * a.len * (a.dv + 2);
  a.splits = splits;
  a.partialFloats =
      splits > 0 ? splits * perSplit : cuda::attentionPartialFloats(a.heads, a.len, a.dv);
  std::vector<float> guard(size_t(a.partialFloats + kGuardFloats), kGuard);
  Dev scratch(guard);
  a.partials = scratch.as();
  const int s = cuda::attentionSplits(a);
  if (splits > 0) {
    EXPECT_EQ(s, std::min(splits, 64)) << "forced splits";
  }
  const unsigned long long before = cuda::launchCount();
  cuda::attention(a);
  EXPECT_EQ(cuda::launchCount() - before, s > 1 ? 2ull : 1ull) << "splits " << s;
  std::string err;
  EXPECT_TRUE(cuda::launchOk(&err)) << err;
  std::vector<float> after = scratch.get(guard.size());
  for (int64_t i = a.partialFloats; i < int64_t(after.size()); ++i)
    if (after[size_t(i)] != kGuard) {
      ADD_FAILURE() << "write past the partials at " << i - a.partialFloats << " (splits " << s
                    << ")";
      break;
    }
  return out.get(outFloats);
}

struct GqaCase {
  int heads, kvHeads, hd;
};

// GQA: every context length x head layout x split mode, position from device memory.
TEST(CudaAttentionSplit, GqaMatchesCpuReference) {
  KT_REQUIRE_GPU();
  ThreadPool pool(1);
  std::mt19937 rng(31);
  for (GqaCase g : {GqaCase{1, 1, 33}, GqaCase{16, 4, 64}, GqaCase{32, 4, 128}, GqaCase{12, 3, 40}})
    for (int64_t ctx : {1, 63, 64, 65, 1000, 4097})
      for (int64_t len : {int64_t(1), int64_t(3)}) {
        if (len > ctx)
          continue;
        const int64_t pos0 = ctx - len, capacity = ctx + 37, row = int64_t(g.kvHeads) * g.hd;
        const double scale = 1.0 / std::sqrt(double(g.hd));
        std::vector<float> q = randomVector(rng, size_t(len * g.heads * g.hd), 0.5f);
        std::vector<float> k = randomVector(rng, size_t(capacity * row)),
                           v = randomVector(rng, size_t(capacity * row));
        std::vector<float> want(q.size());
        cpu::gqaAttentionRef(pool, q.data(), len, g.heads, g.kvHeads, g.hd, k.data(), v.data(),
                             pos0, scale, want.data());
        poisonPast(k, ctx, row);
        poisonPast(v, ctx, row);
        std::vector<int32_t> p0 = {int32_t(pos0)};
        Dev dq(q), dk(k), dv(v), dP0(p0), dOut(q.size() * 4);
        cuda::AttentionArgs a = cuda::gqaAttentionArgs(dq.as(), dk.as(), dv.as(), dOut.as(),
                                                       g.heads, g.kvHeads, g.hd, len, float(scale));
        a.pos0 = -1; // pos0Dev wins
        a.pos0Dev = dP0.as<int32_t>();
        a.maxKeys = capacity;
        if (ctx >= 1000 && g.heads * len <= 16) { // few blocks, long cache: the decode case
          cuda::AttentionArgs probe = a;
          probe.partials = dOut.as(); // only its presence matters to the split rule
          probe.partialFloats = cuda::attentionPartialFloats(g.heads, len, g.hd);
          EXPECT_GT(cuda::attentionSplits(probe), 1) << "heads " << g.heads << " ctx " << ctx;
        }
        for (int splits : {0, 7, 64}) {
          std::vector<float> got = runSplit(a, splits, q.size(), dOut);
          EXPECT_LT(maxRelDiff(got, want), 1e-5)
              << "heads " << g.heads << "/" << g.kvHeads << " hd " << g.hd << " ctx " << ctx
              << " len " << len << " splits " << splits;
        }
      }
}

// Absorbed MLA (k1 = v = the latent, k2 = the rope key): DeepSeek's 512 + 64 and odd small sizes.
TEST(CudaAttentionSplit, MlaMatchesCpuReference) {
  KT_REQUIRE_GPU();
  ThreadPool pool(1);
  std::mt19937 rng(32);
  for (MlaShape m : {MlaShape{16, 512, 64}, MlaShape{3, 72, 16}, MlaShape{1, 33, 7}})
    for (int64_t ctx : {1, 63, 64, 65, 1000, 4097}) {
      const int64_t len = m.heads == 3 ? 2 : 1, pos0 = ctx - len, capacity = ctx + 5;
      if (len > ctx)
        continue;
      MlaProblem p = mlaProblem(rng, pool, m, len, pos0, capacity);
      const double scale = p.scale;
      std::vector<float>&qa = p.qa, &qp = p.qp, &lat = p.lat, &kpe = p.kpe, &want = p.want;
      poisonPast(lat, ctx, m.lora);
      poisonPast(kpe, ctx, m.rope);
      std::vector<int32_t> p0 = {int32_t(pos0)};
      Dev dqa(qa), dqp(qp), dlat(lat), dkpe(kpe), dP0(p0), dOut(qa.size() * 4);
      cuda::AttentionArgs a =
          cuda::mlaAttentionArgs(dqa.as(), dqp.as(), m.rope, dlat.as(), dkpe.as(), dOut.as(),
                                 m.heads, m.lora, m.rope, len, float(scale));
      a.pos0 = -1;
      a.pos0Dev = dP0.as<int32_t>();
      a.maxKeys = capacity;
      for (int splits : {0, 5, 64}) {
        std::vector<float> got = runSplit(a, splits, qa.size(), dOut);
        EXPECT_LT(maxRelDiff(got, want), 1e-5)
            << "heads " << m.heads << " lora " << m.lora << " rope " << m.rope << " ctx " << ctx
            << " splits " << splits;
      }
    }
}

// As in a replayed CUDA graph: one set of launch arguments (split count fixed by the capacity),
// the context growing through device memory only, from one position (most splits empty) to the
// whole capacity.
TEST(CudaAttentionSplit, FixedSplitsFollowDevicePosition) {
  KT_REQUIRE_GPU();
  ThreadPool pool(1);
  std::mt19937 rng(33);
  const int heads = 8, kvHeads = 2, hd = 48;
  const int64_t capacity = 1100, row = int64_t(kvHeads) * hd, len = 1;
  std::vector<float> k = randomVector(rng, size_t(capacity * row)),
                     v = randomVector(rng, size_t(capacity * row));
  std::vector<float> q = randomVector(rng, size_t(len * heads * hd), 0.5f);
  Dev dq(q), dk(k), dv(v), dP0(sizeof(int32_t)), dOut(q.size() * 4);
  cuda::AttentionArgs a =
      cuda::gqaAttentionArgs(dq.as(), dk.as(), dv.as(), dOut.as(), heads, kvHeads, hd, len, 0.15f);
  a.pos0 = 0; // stale host value: the device's wins
  a.pos0Dev = dP0.as<int32_t>();
  a.maxKeys = capacity;
  for (int splits : {0, 13}) {
    a.splits = splits;
    a.partialFloats = splits > 0 ? int64_t(splits) * heads * len * (hd + 2)
                                 : cuda::attentionPartialFloats(heads, len, hd);
    Dev scratch(size_t(a.partialFloats) * 4 + 4);
    a.partials = scratch.as();
    const int fixed = cuda::attentionSplits(a);
    EXPECT_GT(fixed, 1);
    for (int64_t pos0 : {0, 1, 31, 32, 33, 127, 128, 500, 1099}) {
      std::string err;
      const int32_t p = int32_t(pos0);
      ASSERT_TRUE(cuda::toDevice(dP0.as(), &p, sizeof p, &err)) << err;
      std::vector<float> want(q.size());
      cpu::gqaAttentionRef(pool, q.data(), len, heads, kvHeads, hd, k.data(), v.data(), pos0, 0.15,
                           want.data());
      EXPECT_EQ(cuda::attentionSplits(a), fixed); // nothing on the host changed
      cuda::attention(a);
      EXPECT_LT(maxRelDiff(dOut.get(q.size()), want), 1e-5)
          << "pos0 " << pos0 << " splits " << fixed;
    }
  }
}

// The host-side rule, no GPU needed: forced counts are bounded by the merge's table (64) and the
// scratch given; no scratch or a prefill-sized step (more than kAttentionSplitMaxTokens tokens)
// never splits.
TEST(CudaAttentionSplit, SplitCountBoundedByScratchAndTokens) {
  float notRead = 0.f; // attentionSplits only tests the pointer
  cuda::AttentionArgs a;
  a.heads = 4;
  a.len = 2;
  a.dv = 10;
  a.maxKeys = 4096;
  const int64_t perSplit = 4 * 2 * (10 + 2);
  a.partials = &notRead;
  a.partialFloats = 100 * perSplit;
  a.splits = 9;
  EXPECT_EQ(cuda::attentionSplits(a), 9);
  a.splits = 100;
  EXPECT_EQ(cuda::attentionSplits(a), 64);
  a.partialFloats = 5 * perSplit + perSplit - 1; // room for 5, not 6
  EXPECT_EQ(cuda::attentionSplits(a), 5);
  a.partialFloats = perSplit; // room for one: no split
  EXPECT_EQ(cuda::attentionSplits(a), 1);
  a.partialFloats = 100 * perSplit;
  a.partials = nullptr;
  EXPECT_EQ(cuda::attentionSplits(a), 1);
  a.partials = &notRead;
  a.len = cuda::kAttentionSplitMaxTokens + 1;
  EXPECT_EQ(cuda::attentionSplits(a), 1);
  EXPECT_EQ(cuda::attentionPartialFloats(4, cuda::kAttentionSplitMaxTokens + 1, 10), 0);
}

// The automatic rule on this GPU: short caches are not split, long ones are, and the scratch
// attentionPartialFloats asks for (from the shape alone) holds the most splits any capacity gets.
TEST(CudaAttentionSplit, AutoSplitsFollowCapacity) {
  KT_REQUIRE_GPU();
  float notRead = 0.f;
  cuda::AttentionArgs a;
  a.heads = 16; // DeepSeek-V2-Lite's MLA decode: 16 heads, one token, 512 latent floats
  a.len = 1;
  a.dv = 512;
  a.partials = &notRead;
  a.partialFloats = cuda::attentionPartialFloats(a.heads, a.len, a.dv);
  ASSERT_GT(a.partialFloats, 0);
  a.maxKeys = 32;
  EXPECT_EQ(cuda::attentionSplits(a), 1);
  a.maxKeys = 64;
  EXPECT_EQ(cuda::attentionSplits(a), 2);
  int last = 1;
  for (int64_t cap : {128, 1024, 4096, 1 << 20}) {
    a.maxKeys = cap;
    const int s = cuda::attentionSplits(a);
    EXPECT_GE(s, last) << "capacity " << cap;
    EXPECT_LE(int64_t(s) * a.heads * a.len * (a.dv + 2), a.partialFloats) << "capacity " << cap;
    last = s;
  }
  EXPECT_GE(last, 8); // a long cache on a GPU of many SMs
  EXPECT_EQ(cuda::attentionPartialFloats(16, cuda::kAttentionSplitMaxTokens + 1, 512), 0);
}

} // namespace
