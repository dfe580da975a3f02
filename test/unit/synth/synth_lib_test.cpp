// kt-synth's pieces on their own: the tensor table against real transformers checkpoints, the
// counter-based RNG, f16 rounding, shard planning and the streaming safetensors writer.
#include "frontends/hf/HfConfig.h"
#include "frontends/hf/HfTensors.h"
#include "runtime/io/MappedFile.h"
#include "runtime/io/Safetensors.h"
#include "runtime/support/Error.h"
#include "tools/kt-synth/Encode.h"
#include "tools/kt-synth/Random.h"
#include "tools/kt-synth/SafetensorsStream.h"
#include "tools/kt-synth/ShardPlan.h"
#include "tools/kt-synth/WeightInit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace kt;

namespace {

// The table must name exactly the tensors transformers wrote for every reference model, with the
// same shapes: nothing missing, nothing extra.
TEST(HfTensors, MatchTransformersCheckpoints) {
  std::vector<std::string> dirs;
  for (const auto& e : fs::directory_iterator(std::string(KT_FIXTURES_DIR) + "/hf"))
    if (fs::exists(e.path() / "model.safetensors"))
      dirs.push_back(e.path().string());
  dirs.push_back(std::string(KT_EXAMPLES_DIR) + "/austen-moe"); // tied embeddings, bf16
  ASSERT_GE(dirs.size(), 6u);
  for (const std::string& dir : dirs) {
    SCOPED_TRACE(dir);
    hf::ModelConfig c = hf::parseConfig(dir);
    SafetensorsFile f(dir + "/model.safetensors");
    std::map<std::string, std::vector<int64_t>> expected;
    for (const auto& t : hf::checkpointTensors(c)) {
      EXPECT_TRUE(expected.emplace(t.name, t.shape).second) << "listed twice: " << t.name;
    }
    std::map<std::string, std::vector<int64_t>> actual;
    for (const auto& [name, info] : f.tensors())
      actual[name] = info.shape;
    // Some tied checkpoints still carry lm_head.weight; the table rightly leaves it out.
    if (c.tieEmbeddings)
      actual.erase("lm_head.weight");
    EXPECT_EQ(expected, actual);
  }
}

TEST(HfTensors, ExpertsListedExpertByExpert) {
  hf::ModelConfig c = hf::parseConfig(std::string(KT_FIXTURES_DIR) + "/hf/mixtral");
  auto ts = hf::checkpointTensors(c);
  std::vector<std::string> names;
  for (const auto& t : ts)
    if (t.name.rfind("model.layers.0.block_sparse_moe.", 0) == 0)
      names.push_back(t.name);
  ASSERT_GE(names.size(), 7u);
  const std::string p = "model.layers.0.block_sparse_moe.";
  EXPECT_EQ(names[0], p + "gate.weight");
  EXPECT_EQ(names[1], p + "experts.0.w1.weight");
  EXPECT_EQ(names[2], p + "experts.0.w2.weight");
  EXPECT_EQ(names[3], p + "experts.0.w3.weight");
  EXPECT_EQ(names[4], p + "experts.1.w1.weight");
}

TEST(Random, CounterBasedAndChunkIndependent) {
  const uint64_t key = synth::streamKey(7, "model.layers.0.mlp.up_proj.weight");
  std::vector<float> whole(1001);
  synth::fillNormal(key, 0, whole.size(), 0.0f, 1.0f, whole.data());
  // Any split, odd offsets included, gives the same values.
  for (size_t split : {1u, 2u, 333u, 500u, 1000u}) {
    std::vector<float> parts(whole.size());
    synth::fillNormal(key, 0, split, 0.0f, 1.0f, parts.data());
    synth::fillNormal(key, split, whole.size() - split, 0.0f, 1.0f, parts.data() + split);
    EXPECT_EQ(0, std::memcmp(whole.data(), parts.data(), whole.size() * 4)) << "split " << split;
  }
  EXPECT_NE(key, synth::streamKey(8, "model.layers.0.mlp.up_proj.weight"));
  EXPECT_NE(key, synth::streamKey(7, "model.layers.1.mlp.up_proj.weight"));
}

// The exact bits, so that a checkpoint is the same on every machine: these came from the x86-64
// build (AVX2 path); the SSE2 path, other compilers and other CPUs must agree.
TEST(Random, GoldenValues) {
  const uint32_t golden[9] = {0xbcfcb510u, 0x3f04c7f0u, 0xbf89547au, 0xbf8e5c89u, 0x3e2320f8u,
                              0xbf587737u, 0x3f9eb920u, 0x3e5fe131u, 0x3ee115d7u};
  float v[9];
  synth::fillNormal(synth::streamKey(42, "model.embed_tokens.weight"), 1000001, 9, 0.0f, 1.0f, v);
  for (int i = 0; i < 9; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &v[i], 4);
    EXPECT_EQ(bits, golden[i]) << "value " << i << " = " << v[i];
  }
}

TEST(Random, StandardNormal) {
  const size_t n = 1 << 20;
  std::vector<float> z(n);
  synth::fillNormal(synth::streamKey(1, "x"), 0, n, 0.0f, 1.0f, z.data());
  double s = 0, s2 = 0, s4 = 0, maxAbs = 0;
  for (float v : z) {
    ASSERT_TRUE(std::isfinite(v));
    s += v;
    s2 += double(v) * v;
    s4 += double(v) * v * v * v;
    maxAbs = std::max(maxAbs, double(std::fabs(v)));
  }
  const double mean = s / n, var = s2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.005);
  EXPECT_NEAR(var, 1.0, 0.01);
  EXPECT_NEAR(s4 / n / (var * var), 3.0, 0.05); // kurtosis of a normal
  EXPECT_GT(maxAbs, 4.0);
  EXPECT_LT(maxAbs, 6.0);
}

TEST(WeightInit, ScalesByFanIn) {
  using hf::TensorKind;
  auto rule = [](TensorKind k, std::vector<int64_t> shape) {
    return synth::initRule({"t", shape, k});
  };
  EXPECT_FLOAT_EQ(rule(TensorKind::Linear, {512, 2048}).std, 1.0f / std::sqrt(2048.0f));
  EXPECT_FLOAT_EQ(rule(TensorKind::Linear, {2048, 512}).std, 1.0f / std::sqrt(512.0f));
  EXPECT_FLOAT_EQ(rule(TensorKind::Norm, {2048}).mean, 1.0f);
  EXPECT_FLOAT_EQ(rule(TensorKind::Embedding, {1000, 64}).std, 1.0f);
  EXPECT_LT(rule(TensorKind::CorrectionBias, {256}).std, 0.05f);
}

TEST(Encode, F16RoundsToNearestEven) {
  // Every half value round-trips exactly.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16ToF32(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16ToF32(synth::f32ToF16(f))));
      continue;
    }
    ASSERT_EQ(synth::f32ToF16(f), h) << std::hex << h;
  }
  // Halfway between neighbours: to the even one; past the largest: inf; tiny: signed zero.
  EXPECT_EQ(synth::f32ToF16(1.0f + 1.0f / 2048), 0x3c00); // 1 + half an ulp -> 1
  EXPECT_EQ(synth::f32ToF16(1.0f + 3.0f / 2048), 0x3c02); // -> even neighbour above
  EXPECT_EQ(synth::f32ToF16(65520.0f), 0x7c00);
  EXPECT_EQ(synth::f32ToF16(65519.0f), 0x7bff);
  EXPECT_EQ(synth::f32ToF16(-1e-10f), 0x8000);
  EXPECT_EQ(synth::f32ToF16(std::ldexp(1.0f, -25)), 0x0000); // tie with 0: to even (0)
  EXPECT_EQ(synth::f32ToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(synth::f32ToF16(std::ldexp(3.0f, -25)), 0x0002); // 1.5 ulps: tie -> even (2)
}

TEST(ShardPlan, FillsShardsLikeSavePretrained) {
  auto shards = synth::planShards({40, 40, 30, 70, 100, 10}, 100);
  ASSERT_EQ(shards.size(), 4u);
  EXPECT_EQ(shards[0].tensors, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(shards[1].tensors, (std::vector<size_t>{2, 3})); // exactly full
  EXPECT_EQ(shards[2].tensors, (std::vector<size_t>{4}));
  EXPECT_EQ(shards[3].tensors, (std::vector<size_t>{5}));
  EXPECT_EQ(shards[1].dataBytes, 100u);
  EXPECT_EQ(shards[0].file, "model-00001-of-00004.safetensors");
  EXPECT_EQ(shards[3].file, "model-00004-of-00004.safetensors");
  auto one = synth::planShards({1, 2, 3}, 100);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].file, "model.safetensors");
}

TEST(ShardPlan, OversizedTensorGetsItsOwnShard) {
  auto shards = synth::planShards({10, 150, 10}, 100);
  ASSERT_EQ(shards.size(), 3u);
  EXPECT_EQ(shards[1].tensors, (std::vector<size_t>{1}));
  EXPECT_EQ(shards[1].dataBytes, 150u);
}

TEST(ShardPlan, ParsesSizes) {
  uint64_t b = 0;
  EXPECT_TRUE(synth::parseByteSize("4GiB", &b));
  EXPECT_EQ(b, 4ull << 30);
  EXPECT_TRUE(synth::parseByteSize("5GB", &b));
  EXPECT_EQ(b, 5000000000ull);
  EXPECT_TRUE(synth::parseByteSize("1.5MiB", &b));
  EXPECT_EQ(b, 1572864ull);
  EXPECT_TRUE(synth::parseByteSize("4096", &b));
  EXPECT_EQ(b, 4096ull);
  for (const char* bad : {"", "0", "-1GB", "4 GiB", "4XB", "GiB", "nan"})
    EXPECT_FALSE(synth::parseByteSize(bad, &b)) << bad;
}

// The streamed file is a valid safetensors file: the runtime's strict reader accepts it and sees
// the bytes where the header says.
TEST(SafetensorsStream, ReaderAcceptsStreamedFile) {
  const std::string path =
      testing::TempDir() + "/kt_synth_stream_" + std::to_string(getpid()) + ".safetensors";
  std::vector<synth::StreamTensor> ts = {
      {"b", DType::BF16, {3, 5}}, {"a", DType::F32, {7}}, {"empty", DType::F16, {0, 4}}};
  {
    synth::SafetensorsStreamWriter w(path, ts, {{"generator", "test"}});
    std::vector<uint16_t> b(15);
    for (size_t i = 0; i < b.size(); ++i)
      b[i] = uint16_t(i);
    w.append(b.data(), 10); // in two pieces, as chunks would come
    w.append(reinterpret_cast<const uint8_t*>(b.data()) + 10, 20);
    std::vector<float> a = {1, 2, 3, 4, 5, 6, 7};
    w.append(a.data(), 28);
    w.finish();
  }
  SafetensorsFile f(path);
  ASSERT_EQ(f.tensors().size(), 3u);
  const TensorInfo* a = f.find("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->dtype, DType::F32);
  EXPECT_EQ(reinterpret_cast<const float*>(f.data(*a))[6], 7.0f);
  const TensorInfo* b = f.find("b");
  EXPECT_EQ(reinterpret_cast<const uint16_t*>(f.data(*b))[14], 14);
  EXPECT_EQ(f.find("b")->offset % 8, 0u); // data section is 8-byte aligned
  EXPECT_EQ(f.fileSize(), synth::safetensorsFileSize(ts, {{"generator", "test"}}));
  fs::remove(path);
}

TEST(SafetensorsStream, IncompleteFileIsRemoved) {
  const std::string path =
      testing::TempDir() + "/kt_synth_incomplete_" + std::to_string(getpid()) + ".safetensors";
  fs::remove(path);
  {
    synth::SafetensorsStreamWriter w(path, {{"a", DType::F32, {4}}}, {});
    float x = 1;
    w.append(&x, 4);
    EXPECT_THROW(w.finish(), Error); // 4 of 16 bytes
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".partial"));
}

} // namespace
