// Finite-difference checks (f64) of GQA and MLA attention over a batch of sequences: dx and the
// gradients of the adapters on every projection, for the rope and projection variants.
#include "GradTestUtil.h"

#include "runtime/support/ThreadPool.h"

namespace kt::cpu::grad::test {

namespace {

RopeParams ropeOf(RopeType type, int dim, bool interleaved) {
  RopeParams r;
  r.type = type;
  r.dim = dim;
  r.theta = 50.0; // a small base turns even the short test sequences through large angles
  r.interleaved = interleaved;
  if (type == RopeType::Yarn) {
    r.factor = 4.0;
    r.originalMaxPosition = 16;
    r.attentionFactor = 1.2;
  } else if (type == RopeType::Llama3) {
    r.factor = 8.0;
    r.originalMaxPosition = 8;
    r.lowFreqFactor = 1.0;
    r.highFreqFactor = 4.0;
  }
  return r;
}

struct GqaCase {
  const char* name;
  int heads, kvHeads, headDim;
  RopeParams rope;
  bool bias, qkNorm;
};

TEST(GradFd, GqaAttentionVariants) {
  ThreadPool pool(2);
  const GqaCase cases[] = {
      {"llama gqa", 4, 2, 6, ropeOf(RopeType::Default, 6, false), false, false},
      {"bias + qk-norm + llama3 rope", 4, 2, 6, ropeOf(RopeType::Llama3, 6, false), true, true},
      {"mha + partial interleaved yarn rope", 3, 3, 8, ropeOf(RopeType::Yarn, 4, true), false,
       true},
  };
  for (const GqaCase& c : cases) {
    WeightStore ws(21);
    const int64_t batch = 2, L = 5, H = 12;
    AttentionParams p;
    p.numHeads = c.heads;
    p.numKvHeads = c.kvHeads;
    p.headDim = c.headDim;
    p.scale = 1.0 / std::sqrt(double(c.headDim));
    p.rope = c.rope;
    p.normEps = 1e-6;
    const int64_t qOut = int64_t(c.heads) * c.headDim, kvOut = int64_t(c.kvHeads) * c.headDim;
    LoraSet<double> loras;
    AttentionWeightsT<double> w;
    w.q = {ws.mat(qOut, H), c.bias ? ws.mat(1, qOut) : MatrixView{}, loras.add(ws, qOut, H)};
    w.k = {ws.mat(kvOut, H), c.bias ? ws.mat(1, kvOut) : MatrixView{}, loras.add(ws, kvOut, H)};
    w.v = {ws.mat(kvOut, H), c.bias ? ws.mat(1, kvOut) : MatrixView{}, loras.add(ws, kvOut, H)};
    w.o = {ws.mat(H, qOut), {}, loras.add(ws, H, qOut)};
    if (c.qkNorm) {
      w.qNorm = ws.normWeight(c.headDim);
      w.kNorm = ws.normWeight(c.headDim);
    }
    std::vector<double> x = ws.randnT<double>(size_t(batch * L * H), 1.0),
                        dy = ws.randnT<double>(x.size(), 1.0);
    auto f = [&] {
      std::vector<double> y(x.size());
      gqaForward(pool, p, w, x.data(), batch, L, y.data());
      return dotd(dy, y);
    };
    std::vector<double> dx(x.size());
    gqaBackward(pool, p, w, x.data(), batch, L, dy.data(), dx.data());
    checkAll(c.name, f, x, dx, loras);
  }
}

TEST(GradFd, GqaSequencesDoNotSeeEachOther) {
  // The batch is B independent sequences: the gradient of sequence 1's output w.r.t. sequence 0's
  // input is zero, and the first position of a sequence only sees itself.
  ThreadPool pool(2);
  WeightStore ws(22);
  const int64_t batch = 2, L = 3, H = 8;
  AttentionParams p;
  p.numHeads = 2;
  p.numKvHeads = 1;
  p.headDim = 4;
  p.scale = 0.5;
  p.rope = ropeOf(RopeType::Default, 4, false);
  AttentionWeightsT<double> w;
  w.q = {ws.mat(8, H), {}, nullptr};
  w.k = {ws.mat(4, H), {}, nullptr};
  w.v = {ws.mat(4, H), {}, nullptr};
  w.o = {ws.mat(H, 8), {}, nullptr};
  std::vector<double> x = ws.randnT<double>(size_t(batch * L * H), 1.0), dy(x.size(), 0.0),
                      dx(x.size());
  for (int64_t k = 0; k < H; ++k)
    dy[size_t((L + 0) * H + k)] = 1.0; // only sequence 1, position 0
  gqaBackward(pool, p, w, x.data(), batch, L, dy.data(), dx.data());
  for (int64_t r = 0; r < batch * L; ++r)
    for (int64_t k = 0; k < H; ++k)
      if (r != L) {
        EXPECT_EQ(dx[size_t(r * H + k)], 0.0) << "row " << r;
      }
}

struct MlaCase {
  const char* name;
  int qLoraRank;
  RopeParams rope;
  double mscale;
};

TEST(GradFd, MlaAttentionVariants) {
  ThreadPool pool(2);
  const MlaCase cases[] = {
      {"q_proj, interleaved rope (V2)", 0, ropeOf(RopeType::Default, 4, true), 1.0},
      {"q_a/q_b, yarn rope + mscale (V3)", 7, ropeOf(RopeType::Yarn, 4, false), 1.3},
  };
  for (const MlaCase& c : cases) {
    WeightStore ws(23);
    const int64_t batch = 2, L = 4, H = 12;
    MlaParams p;
    p.numHeads = 3;
    p.qLoraRank = c.qLoraRank;
    p.kvLoraRank = 6;
    p.qkNopeHeadDim = 4;
    p.qkRopeHeadDim = 4;
    p.vHeadDim = 5;
    p.scale = c.mscale * c.mscale / std::sqrt(8.0);
    p.rope = c.rope;
    p.normEps = 1e-6;
    const int64_t qOut = 3 * 8, kvaOut = 6 + 4, kvbOut = 3 * (4 + 5), oIn = 3 * 5;
    LoraSet<double> loras;
    MlaWeightsT<double> w;
    if (c.qLoraRank > 0) {
      w.qA = {ws.mat(c.qLoraRank, H), {}, loras.add(ws, c.qLoraRank, H)};
      w.qANorm = ws.normWeight(c.qLoraRank);
      w.qB = {ws.mat(qOut, c.qLoraRank), {}, loras.add(ws, qOut, c.qLoraRank)};
    } else {
      w.q = {ws.mat(qOut, H), {}, loras.add(ws, qOut, H)};
    }
    w.kvA = {ws.mat(kvaOut, H), {}, loras.add(ws, kvaOut, H)};
    w.kvANorm = ws.normWeight(6);
    w.kvB = {ws.mat(kvbOut, 6), {}, loras.add(ws, kvbOut, 6)};
    w.o = {ws.mat(H, oIn), {}, loras.add(ws, H, oIn)};
    std::vector<double> x = ws.randnT<double>(size_t(batch * L * H), 1.0),
                        dy = ws.randnT<double>(x.size(), 1.0);
    auto f = [&] {
      std::vector<double> y(x.size());
      mlaForward(pool, p, w, x.data(), batch, L, y.data());
      return dotd(dy, y);
    };
    std::vector<double> dx(x.size());
    mlaBackward(pool, p, w, x.data(), batch, L, dy.data(), dx.data());
    checkAll(c.name, f, x, dx, loras);
  }
}

} // namespace
} // namespace kt::cpu::grad::test
