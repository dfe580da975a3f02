// kt-synth end to end: the real configs in examples/configs give the published model sizes, the
// checkpoints it writes compile with kt-compile and run with kt-rt, output is deterministic,
// sharded and single-file checkpoints compute the same logits, memory stays bounded, and bad
// input gets a clear error.
#include "runtime/io/Safetensors.h"

#include "test/unit/common/RunCommand.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace kt;

namespace {

const std::string kSynth = testing_util::tool("kt-synth");
using testing_util::kCompile;
using testing_util::kRt;
const std::string kConfigs = std::string(KT_EXAMPLES_DIR) + "/configs";
const std::string kFixtures = std::string(KT_FIXTURES_DIR) + "/hf";

using testing_util::expectError;
using testing_util::Result;
using testing_util::run;

std::string tempDir(const std::string& name) {
  return testing_util::tempDir("kt_synth_", name);
}

// "key: value" lines of --dry-run.
std::map<std::string, std::string> fields(const std::string& out) {
  std::map<std::string, std::string> m;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    size_t c = line.find(": ");
    if (c != std::string::npos)
      m[line.substr(0, c)] = line.substr(c + 2);
  }
  return m;
}

std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Every file of a checkpoint folder, by name.
std::map<std::string, std::string> folderBytes(const std::string& dir) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::directory_iterator(dir))
    m[e.path().filename().string()] = readFile(e.path().string());
  return m;
}

std::vector<float> logits(const std::string& path) {
  SafetensorsFile f(path);
  const TensorInfo* t = f.find("logits");
  if (!t)
    return {};
  const float* p = reinterpret_cast<const float*>(f.data(*t));
  return std::vector<float>(p, p + t->numel());
}

struct Published {
  const char* file;
  const char* arch;
  int layers, moeLayers;
  uint64_t tensors, parameters;
};

// Parameter counts computed independently of KT's tensor table (a separate script over the
// config fields); they round to the published totals: 15.7 B, 671 B (without the MTP layer),
// 30.5 B, 46.7 B, 14.3 B and 8.03 B.
const Published kPublished[] = {
    {"deepseek-v2-lite.json", "deepseek_v2", 27, 26, 5291, 15706484224ull},
    {"deepseek-v3.json", "deepseek_v3", 61, 58, 45395, 671026419200ull},
    {"qwen3-30b-a3b.json", "qwen3_moe", 48, 48, 18867, 30532122624ull},
    {"mixtral-8x7b.json", "mixtral", 32, 32, 995, 46702792704ull},
    {"qwen2-moe-a2.7b.json", "qwen2_moe", 24, 24, 4659, 14315784192ull},
    {"llama-3.1-8b.json", "llama", 32, 0, 291, 8030261248ull},
};

// The same, cut to 2 layers with --layers 2.
const Published kTwoLayers[] = {
    {"deepseek-v2-lite.json", "deepseek_v2", 2, 1, 216, 1085287424ull},
    {"deepseek-v3.json", "deepseek_v3", 2, 0, 27, 3020332032ull},
    {"qwen3-30b-a3b.json", "qwen3_moe", 2, 2, 789, 1868573184ull},
    {"mixtral-8x7b.json", "mixtral", 2, 2, 65, 3164688384ull},
    {"qwen2-moe-a2.7b.json", "qwen2_moe", 2, 2, 391, 1763452928ull},
    {"llama-3.1-8b.json", "llama", 2, 0, 21, 1486901248ull},
};

void expectPlan(const Published& p, const std::string& extraFlags, uint64_t bytesPerParam) {
  SCOPED_TRACE(p.file);
  Result r = run(kSynth + " " + kConfigs + "/" + p.file + " --dry-run " + extraFlags);
  ASSERT_EQ(r.code, 0) << r.output;
  auto f = fields(r.output);
  EXPECT_EQ(f["model_type"], p.arch);
  EXPECT_EQ(f["layers"], std::to_string(p.layers) + " (" + std::to_string(p.moeLayers) + " MoE)");
  EXPECT_EQ(f["tensors"], std::to_string(p.tensors));
  EXPECT_EQ(f["parameters"], std::to_string(p.parameters));
  EXPECT_EQ(f["bytes"], std::to_string(p.parameters * bytesPerParam));
}

TEST(SynthDryRun, RealConfigsHavePublishedSizes) {
  for (const Published& p : kPublished)
    expectPlan(p, "", 2);
}

TEST(SynthDryRun, EveryConfigAtTwoLayers) {
  for (const Published& p : kTwoLayers)
    expectPlan(p, "--layers 2", 2);
  expectPlan(kTwoLayers[0], "--layers 2 --dtype f32", 4);
  expectPlan(kTwoLayers[0], "--layers 2 --dtype f16", 2);
}

TEST(SynthDryRun, ShardsLikeSavePretrained) {
  // 1.34 TB of DeepSeek-V3 in 4 GiB shards.
  Result r = run(kSynth + " " + kConfigs + "/deepseek-v3.json --dry-run");
  ASSERT_EQ(r.code, 0) << r.output;
  const uint64_t files = std::stoull(fields(r.output)["files"]);
  EXPECT_GE(files, 1342052838400ull / (4ull << 30));
  EXPECT_LE(files, 1342052838400ull / (4ull << 30) + 20);
  r = run(kSynth + " " + kConfigs + "/deepseek-v3.json --dry-run --shard-size 5GB");
  EXPECT_LT(std::stoull(fields(r.output)["files"]), files);
}

// A model with every tensor shape of the real one (hidden, intermediate, heads, ranks), fewer
// experts and a smaller vocabulary so that test time and disk stay small.
struct Miniature {
  const char* file;
  const char* flags;
};
const Miniature kMiniatures[] = {
    // qwen2_moe has no transformers fixture: this is its end-to-end check.
    {"qwen2-moe-a2.7b.json", "--layers 2 --set vocab_size=4096 --set num_experts=8"},
    {"deepseek-v2-lite.json", "--layers 2 --set vocab_size=4096 --set n_routed_experts=8"},
    {"qwen3-30b-a3b.json", "--layers 2 --set vocab_size=4096 --set num_experts=8"},
};

TEST(SynthEndToEnd, CompilesAndGenerates) {
  for (const Miniature& m : kMiniatures) {
    SCOPED_TRACE(m.file);
    const std::string d = tempDir("e2e");
    Result r = run(kSynth + " " + kConfigs + "/" + m.file + " " + d + "/model " + m.flags);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("MB/s"), std::string::npos) << r.output;
    r = run(kCompile + " " + d + "/model -o " + d + "/p.ktplan");
    ASSERT_EQ(r.code, 0) << r.output;
    r = run(kRt + " generate " + d + "/p.ktplan --ids 1,2,3,4,5 -n 4 --ignore-eos --json");
    ASSERT_EQ(r.code, 0) << r.output;
    nlohmann::json j = nlohmann::json::parse(r.output.substr(r.output.find('{')), nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.output;
    ASSERT_EQ(j["new_ids"].size(), 4u) << r.output;
    for (const auto& id : j["new_ids"])
      EXPECT_TRUE(id.get<int>() >= 0 && id.get<int>() < 4096) << r.output;
    // The logits are finite and O(1): the initialization keeps activations sane.
    r = run(kRt + " score " + d + "/p.ktplan --ids 1,2,3,4,5 --out " + d + "/s.safetensors");
    ASSERT_EQ(r.code, 0) << r.output;
    std::vector<float> l = logits(d + "/s.safetensors");
    ASSERT_EQ(l.size(), 5u * 4096u);
    double s2 = 0;
    for (float v : l) {
      ASSERT_TRUE(std::isfinite(v));
      s2 += double(v) * v;
    }
    const double rms = std::sqrt(s2 / double(l.size()));
    EXPECT_GT(rms, 0.1);
    EXPECT_LT(rms, 20.0);
    fs::remove_all(d);
  }
}

TEST(SynthDeterminism, SameSeedSameBytes) {
  const std::string d = tempDir("determinism");
  const std::string cfg = kFixtures + "/deepseek_v3/config.json";
  for (const char* dtype : {"bf16", "f16", "f32"}) {
    SCOPED_TRACE(dtype);
    const std::string flags = std::string(" -q --dtype ") + dtype;
    ASSERT_EQ(run(kSynth + " " + cfg + " " + d + "/a --seed 11" + flags).code, 0);
    ASSERT_EQ(run(kSynth + " " + cfg + " " + d + "/b --seed 11" + flags).code, 0);
    ASSERT_EQ(run(kSynth + " " + cfg + " " + d + "/c --seed 12" + flags).code, 0);
    auto a = folderBytes(d + "/a"), b = folderBytes(d + "/b"), c = folderBytes(d + "/c");
    EXPECT_EQ(a, b);
    ASSERT_EQ(a.count("model.safetensors"), 1u);
    EXPECT_EQ(a["config.json"], c["config.json"]);
    EXPECT_NE(a["model.safetensors"], c["model.safetensors"]);
    EXPECT_EQ(a["model.safetensors"].size(), c["model.safetensors"].size());
  }
  // A tensor's values depend on (seed, name) only, not on the other tensors: a 1-layer model's
  // embedding table equals the 3-layer model's.
  ASSERT_EQ(run(kSynth + " " + cfg + " " + d + "/one -q --seed 11 --dtype f32 --layers 1").code, 0);
  SafetensorsFile full(d + "/a/model.safetensors"), one(d + "/one/model.safetensors");
  const TensorInfo* t1 = full.find("model.embed_tokens.weight");
  const TensorInfo* t2 = one.find("model.embed_tokens.weight");
  ASSERT_TRUE(t1 && t2);
  EXPECT_EQ(0, std::memcmp(full.data(*t1), one.data(*t2), t1->size));
  fs::remove_all(d);
}

TEST(SynthSharding, ShardsComputeTheSameLogits) {
  const std::string d = tempDir("sharding");
  const std::string cfg = kFixtures + "/deepseek_v3/config.json";
  ASSERT_EQ(run(kSynth + " " + cfg + " " + d + "/single -q --dtype f32 --seed 5").code, 0);
  Result r =
      run(kSynth + " " + cfg + " " + d + "/sharded -q --dtype f32 --seed 5 --shard-size 100KB");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(d + "/single/model.safetensors"));
  EXPECT_FALSE(fs::exists(d + "/sharded/model.safetensors"));
  nlohmann::json index =
      nlohmann::json::parse(readFile(d + "/sharded/model.safetensors.index.json"));
  std::set<std::string> shardFiles;
  for (auto& [name, file] : index["weight_map"].items())
    shardFiles.insert(file.get<std::string>());
  EXPECT_GT(shardFiles.size(), 3u);
  for (const auto& f : shardFiles) {
    EXPECT_TRUE(fs::exists(d + "/sharded/" + f)) << f;
    EXPECT_NE(f.find("-of-"), std::string::npos) << f;
  }
  uint64_t dataBytes = 0;
  SafetensorsFile singleFile(d + "/single/model.safetensors");
  for (const auto& [name, t] : singleFile.tensors())
    dataBytes += t.size;
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), dataBytes);
  EXPECT_EQ(index["weight_map"].size(), singleFile.tensors().size());
  for (const char* m : {"single", "sharded"}) {
    ASSERT_EQ(run(kCompile + " " + d + "/" + m + " -o " + d + "/" + m + ".ktplan").code, 0) << m;
    r = run(kRt + " score " + d + "/" + m + ".ktplan --ids 3,1,4,1,5,9 --out " + d + "/" + m +
            ".out.safetensors");
    ASSERT_EQ(r.code, 0) << r.output;
  }
  std::vector<float> a = logits(d + "/single.out.safetensors"),
                     b = logits(d + "/sharded.out.safetensors");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  // Re-synthesizing into the folder as one file replaces the shards and the index.
  ASSERT_EQ(run(kSynth + " " + cfg + " " + d + "/sharded -q --dtype f32 --seed 5").code, 0);
  EXPECT_FALSE(fs::exists(d + "/sharded/model.safetensors.index.json"));
  EXPECT_EQ(folderBytes(d + "/sharded"), folderBytes(d + "/single"));
  fs::remove_all(d);
}

// --layout-only: the same files, sizes, headers and plan as the real run, the data left as
// holes (zeros, almost no disk), so a plan for a model larger than the disk can be compiled.
TEST(SynthLayoutOnly, SameLayoutAsTheRealCheckpoint) {
  const std::string d = tempDir("layout");
  const std::string cfg = kFixtures + "/deepseek_v3/config.json";
  const std::string flags = " -q --seed 3 --shard-size 300KB";
  ASSERT_EQ(run(kSynth + " " + cfg + " " + d + "/real" + flags).code, 0);
  Result r = run(kSynth + " " + cfg + " " + d + "/hole" + flags + " --layout-only");
  ASSERT_EQ(r.code, 0) << r.output;
  auto real = folderBytes(d + "/real"), holes = folderBytes(d + "/hole");
  ASSERT_EQ(real.size(), holes.size());
  ASSERT_GT(real.size(), 3u); // config, index and several shards
  uint64_t allocated = 0, size = 0;
  for (const auto& [name, bytes] : real) {
    ASSERT_EQ(holes.count(name), 1u) << name;
    const std::string& h = holes[name];
    ASSERT_EQ(bytes.size(), h.size()) << name;
    if (name.find(".safetensors") == std::string::npos || name.find(".json") != std::string::npos) {
      EXPECT_EQ(bytes, h) << name; // config.json and the shard index are the same text
      continue;
    }
    // The header (8-byte length + JSON) is the same; the data section reads as zeros.
    uint64_t headerLen = 0;
    std::memcpy(&headerLen, bytes.data(), 8);
    EXPECT_EQ(bytes.substr(0, 8 + headerLen), h.substr(0, 8 + headerLen)) << name;
    EXPECT_EQ(h.find_first_not_of('\0', 8 + headerLen), std::string::npos) << name;
    struct stat st;
    ASSERT_EQ(::stat((d + "/hole/" + name).c_str(), &st), 0);
    allocated += uint64_t(st.st_blocks) * 512;
    size += uint64_t(st.st_size);
  }
  EXPECT_LT(allocated, size / 4) << "the data should be holes";
  // Both compile to the same plan.
  for (const char* m : {"real", "hole"})
    ASSERT_EQ(run(kCompile + " " + d + "/" + m + " -o " + d + "/" + m + ".ktplan").code, 0) << m;
  EXPECT_EQ(readFile(d + "/real.ktplan").size(), readFile(d + "/hole.ktplan").size());
  fs::remove_all(d);
}

// Streaming: a checkpoint of >= 500 MB is written in well under 64 MB of resident memory.
TEST(SynthMemory, PeakRssStaysSmall) {
  const std::string d = tempDir("memory");
  const std::string cmd =
      kSynth + " " + kConfigs + "/qwen2-moe-a2.7b.json " + d +
      "/model -q --layers 1 --dtype f32 --set vocab_size=4096 --set num_experts=8";
  long peakKb = -1;
  if (fs::exists("/usr/bin/time")) {
    Result r = run("/usr/bin/time -f 'peak_rss_kb: %M' " + cmd);
    ASSERT_EQ(r.code, 0) << r.output;
    peakKb = std::stol(fields(r.output)["peak_rss_kb"]);
  } else {
    Result r = run(cmd);
    ASSERT_EQ(r.code, 0) << r.output;
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru); // the largest child so far: kt-synth is the largest here
    peakKb = ru.ru_maxrss;
  }
  uint64_t bytes = 0;
  for (const auto& e : fs::directory_iterator(d + "/model"))
    bytes += fs::file_size(e.path());
  EXPECT_GE(bytes, 500ull * 1000 * 1000);
  EXPECT_GT(peakKb, 0);
  EXPECT_LT(peakKb, 64 * 1024) << "peak RSS " << peakKb << " kB";
  std::printf("kt-synth wrote %.0f MB with peak RSS %.1f MB\n", double(bytes) / 1e6,
              double(peakKb) / 1024);
  fs::remove_all(d);
}

TEST(SynthErrors, BadConfigs) {
  const std::string d = tempDir("errors");
  expectError(run(kSynth + " " + d + "/nope.json " + d + "/out"), {"nope.json"});
  std::ofstream(d + "/bad.json") << "{\"model_type\": \"llama\",,}";
  expectError(run(kSynth + " " + d + "/bad.json " + d + "/out"), {"bad.json", "malformed JSON"});
  std::ofstream(d + "/arch.json") << "{\"model_type\": \"gpt_bigfoot\", \"vocab_size\": 10}";
  expectError(run(kSynth + " " + d + "/arch.json " + d + "/out"),
              {"arch.json", "model_type", "gpt_bigfoot"});
  expectError(
      run(kSynth + " " + kConfigs + "/llama-3.1-8b.json " + d + "/out --set hidden_size=-4"),
      {"llama-3.1-8b.json", "hidden_size"});
  EXPECT_FALSE(fs::exists(d + "/out/config.json"));
}

TEST(SynthErrors, BadOutputFolders) {
  const std::string d = tempDir("outdirs");
  const std::string cfg = kFixtures + "/llama/config.json";
  std::ofstream(d + "/file") << "x";
  expectError(run(kSynth + " " + cfg + " " + d + "/file"), {"/file", "not a directory"});
  expectError(run(kSynth + " " + cfg + " " + d + "/file/sub"),
              {"/file/sub", "cannot create directory"});
  // A real checkpoint in the folder is never overwritten.
  fs::create_directories(d + "/real");
  fs::copy_file(kFixtures + "/llama/model.safetensors", d + "/real/model.safetensors");
  expectError(run(kSynth + " " + cfg + " " + d + "/real"),
              {"real/model.safetensors", "not written by kt-synth"});
  EXPECT_EQ(fs::file_size(d + "/real/model.safetensors"),
            fs::file_size(kFixtures + "/llama/model.safetensors"));
  // Too big for the disk: refused before writing anything.
  expectError(run(kSynth + " " + kConfigs + "/deepseek-v3.json " + d + "/huge"),
              {"/huge", "not enough disk space"});
  EXPECT_TRUE(fs::is_empty(d + "/huge"));
}

TEST(SynthErrors, BadFlags) {
  const std::string cfg = kFixtures + "/llama/config.json";
  for (const char* flags : {"--dtype int3", "--layers 0", "--layers x", "--seed -1",
                            "--shard-size 4XB", "--set novalue", "--frobnicate", ""}) {
    Result r = run(kSynth + " " + cfg + " " + flags);
    EXPECT_EQ(r.code, 2) << flags << ": " << r.output;
    EXPECT_NE(r.output.find("kt-synth: error"), std::string::npos) << r.output;
  }
}

} // namespace
