// The command-line tools on good and bad input: bad input must give a clear error that names the
// file and the tensor/field at fault and a non-zero exit code — never a crash. Also: sharded and
// bf16/f16 checkpoints compile and run.
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
#include <regex>
#include <sys/wait.h>

namespace fs = std::filesystem;
using namespace kt;

namespace {

using testing_util::expectError;
using testing_util::kCompile;
using testing_util::kFixtures;
using testing_util::kRt;
using testing_util::Result;
using testing_util::run;

std::string tempDir(const std::string& name) {
  return testing_util::tempDir("kt_cli_", name);
}

// A copy of a fixture model folder whose config.json and tensors the test may then damage.
std::string copyModel(const std::string& arch, const std::string& name) {
  std::string d = tempDir(name);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(kFixtures + "/" + arch + "/" + f, d + "/" + f);
  return d;
}

void editConfig(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j;
  std::ifstream(dir + "/config.json") >> j;
  edit(j);
  std::ofstream(dir + "/config.json") << j.dump(2);
}

// Rewrites model.safetensors through `convert`, which may rename, drop or retype tensors.
struct OwnedTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
std::vector<OwnedTensor> readAll(const std::string& path) {
  SafetensorsFile f(path);
  std::vector<OwnedTensor> out;
  for (const auto& [name, t] : f.tensors()) {
    const uint8_t* p = f.data(t);
    out.push_back({name, t.dtype, t.shape, std::vector<uint8_t>(p, p + t.size)});
  }
  return out;
}
void writeAll(const std::string& path, const std::vector<OwnedTensor>& ts) {
  std::vector<OutTensor> out;
  for (const auto& t : ts)
    out.push_back({t.name, t.dtype, t.shape, t.bytes.data()});
  writeSafetensors(path, out);
}

TEST(CompileErrors, UnknownArchitecture) {
  std::string d = copyModel("llama", "unknown_arch");
  editConfig(d, [](nlohmann::json& j) { j["model_type"] = "gpt_bigfoot"; });
  expectError(run(kCompile + " " + d + " -o " + d + "/p.ktplan"),
              {"config.json", "model_type", "gpt_bigfoot", "supported"});
}

TEST(CompileErrors, MalformedJson) {
  std::string d = copyModel("llama", "bad_json");
  std::ofstream(d + "/config.json") << "{\"model_type\": \"llama\", \"hidden_size\": 128,,}";
  expectError(run(kCompile + " " + d + " -o " + d + "/p.ktplan"),
              {"config.json", "malformed JSON"});
}

TEST(CompileErrors, MissingField) {
  std::string d = copyModel("llama", "missing_field");
  editConfig(d, [](nlohmann::json& j) { j.erase("num_hidden_layers"); });
  expectError(run(kCompile + " " + d + " -o " + d + "/p.ktplan"),
              {"config.json", "num_hidden_layers", "missing"});
}

TEST(CompileErrors, MissingTensor) {
  std::string d = copyModel("deepseek_v3", "missing_tensor");
  auto ts = readAll(d + "/model.safetensors");
  ts.erase(std::remove_if(ts.begin(), ts.end(),
                          [](const OwnedTensor& t) {
                            return t.name == "model.layers.1.mlp.experts.7.up_proj.weight";
                          }),
           ts.end());
  writeAll(d + "/model.safetensors", ts);
  expectError(run(kCompile + " " + d + " -o " + d + "/p.ktplan"),
              {"missing tensor", "model.layers.1.mlp.experts.7.up_proj.weight"});
}

TEST(CompileErrors, MisShapedTensor) {
  std::string d = copyModel("qwen3_moe", "bad_shape");
  editConfig(d, [](nlohmann::json& j) { j["moe_intermediate_size"] = 48; });
  expectError(run(kCompile + " " + d + " -o " + d + "/p.ktplan"),
              {"model.safetensors", "model.layers.1.mlp.experts.0.gate_proj.weight", "[64, 128]",
               "[48, 128]"});
}

TEST(CompileErrors, TruncatedSafetensors) {
  std::string d = copyModel("mixtral", "truncated");
  fs::resize_file(d + "/model.safetensors", fs::file_size(d + "/model.safetensors") / 2);
  expectError(run(kCompile + " " + d + " -o " + d + "/p.ktplan"),
              {"model.safetensors", "truncated"});
  fs::resize_file(d + "/model.safetensors", 5);
  expectError(run(kCompile + " " + d + " -o " + d + "/p.ktplan"),
              {"model.safetensors", "truncated"});
}

TEST(CompileErrors, NoCheckpoint) {
  std::string d = copyModel("llama", "no_ckpt");
  fs::remove(d + "/model.safetensors");
  expectError(run(kCompile + " " + d + " -o " + d + "/p.ktplan"), {"no model.safetensors"});
  expectError(run(kCompile + " /nonexistent/model -o x.ktplan"),
              {"/nonexistent/model/config.json"});
}

TEST(RuntimeErrors, BadPlansAndRequests) {
  std::string d = copyModel("llama", "rt_errors");
  ASSERT_EQ(run(kCompile + " " + d + " -o " + d + "/p.ktplan").code, 0);
  expectError(run(kRt + " generate " + d + "/p.ktplan --ids 5,999 -n 2"),
              {"token id 999", "vocabulary"});
  expectError(run(kRt + " generate " + d + "/p.ktplan --ids 5,x -n 2"), {"--ids", "'x'"});
  expectError(run(kRt + " generate " + d + "/p.ktplan --idz 5"), {"unknown flag '--idz'"});
  // A plan cut short, and a plan whose weights changed under it.
  fs::copy_file(d + "/p.ktplan", d + "/cut.ktplan");
  fs::resize_file(d + "/cut.ktplan", fs::file_size(d + "/cut.ktplan") - 100);
  expectError(run(kRt + " inspect " + d + "/cut.ktplan"), {"cut.ktplan", "truncated"});
  fs::resize_file(d + "/model.safetensors", fs::file_size(d + "/model.safetensors") - 4);
  expectError(run(kRt + " generate " + d + "/p.ktplan --ids 5 -n 1"),
              {"model.safetensors", "recompile"});
  expectError(run(kRt + " inspect " + d + "/missing.ktplan"), {"missing.ktplan"});
}

std::vector<float> scoreLogits(const std::string& plan, const std::string& ids,
                               const std::string& out) {
  Result r = run(kRt + " score " + plan + " --ids " + ids + " --out " + out);
  EXPECT_EQ(r.code, 0) << r.output;
  SafetensorsFile f(out);
  const TensorInfo* t = f.find("logits");
  if (!t)
    return {};
  std::vector<float> v(size_t(t->numel()));
  std::memcpy(v.data(), f.data(*t), v.size() * 4);
  return v;
}

TEST(Checkpoints, ShardedEqualsSingleFile) {
  std::string d = copyModel("deepseek_v2", "sharded");
  auto ts = readAll(d + "/model.safetensors");
  std::vector<OwnedTensor> a, b;
  nlohmann::json index = {{"metadata", nlohmann::json::object()},
                          {"weight_map", nlohmann::json::object()}};
  for (size_t i = 0; i < ts.size(); ++i) {
    (i % 2 ? a : b).push_back(ts[i]);
    index["weight_map"][ts[i].name] =
        i % 2 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  std::string single = tempDir("single");
  fs::copy_file(d + "/config.json", single + "/config.json");
  fs::rename(d + "/model.safetensors", single + "/model.safetensors");
  writeAll(d + "/model-00001-of-00002.safetensors", a);
  writeAll(d + "/model-00002-of-00002.safetensors", b);
  std::ofstream(d + "/model.safetensors.index.json") << index.dump(1);
  ASSERT_EQ(run(kCompile + " " + d + " -o " + d + "/p.ktplan").code, 0);
  ASSERT_EQ(run(kCompile + " " + single + " -o " + single + "/p.ktplan").code, 0);
  std::vector<float> x = scoreLogits(d + "/p.ktplan", "1,5,9,33,2", d + "/s.safetensors");
  std::vector<float> y = scoreLogits(single + "/p.ktplan", "1,5,9,33,2", single + "/s.safetensors");
  ASSERT_EQ(x.size(), y.size());
  EXPECT_EQ(x, y);
  Result r = run(kRt + " inspect " + d + "/p.ktplan");
  EXPECT_NE(r.output.find("model-00002-of-00002.safetensors"), std::string::npos) << r.output;
}

// bf16 and f16 weights are read in place and converted exactly: a checkpoint stored in bf16 must
// give the same logits as the f32 checkpoint holding the same (bf16-rounded) values.
void checkHalfPrecision(DType half) {
  std::string name = half == DType::BF16 ? "bf16" : "f16";
  std::string h = copyModel("mixtral", name);
  std::string f = copyModel("mixtral", name + "_as_f32");
  auto ts = readAll(h + "/model.safetensors");
  std::vector<OwnedTensor> halves, rounded;
  for (const auto& t : ts) {
    const float* src = reinterpret_cast<const float*>(t.bytes.data());
    size_t n = t.bytes.size() / 4;
    OwnedTensor ht{t.name, half, t.shape, std::vector<uint8_t>(n * 2)},
        rt{t.name, DType::F32, t.shape, std::vector<uint8_t>(n * 4)};
    uint16_t* hp = reinterpret_cast<uint16_t*>(ht.bytes.data());
    float* rp = reinterpret_cast<float*>(rt.bytes.data());
    for (size_t i = 0; i < n; ++i) {
      if (half == DType::BF16) {
        hp[i] = f32ToBf16(src[i]);
        rp[i] = bf16ToF32(hp[i]);
      } else {
        _Float16 v = _Float16(src[i]);
        std::memcpy(&hp[i], &v, 2);
        rp[i] = float(v);
      }
    }
    halves.push_back(std::move(ht));
    rounded.push_back(std::move(rt));
  }
  writeAll(h + "/model.safetensors", halves);
  writeAll(f + "/model.safetensors", rounded);
  ASSERT_EQ(run(kCompile + " " + h + " -o " + h + "/p.ktplan").code, 0);
  ASSERT_EQ(run(kCompile + " " + f + " -o " + f + "/p.ktplan").code, 0);
  std::vector<float> x = scoreLogits(h + "/p.ktplan", "1,7,19,200,3,3", h + "/s.safetensors");
  std::vector<float> y = scoreLogits(f + "/p.ktplan", "1,7,19,200,3,3", f + "/s.safetensors");
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_NEAR(x[i], y[i], 1e-5) << name << " logit " << i;
  EXPECT_NE(run(kRt + " inspect " + h + "/p.ktplan --weights").output.find(name),
            std::string::npos);
}

TEST(Checkpoints, Bf16Weights) {
  checkHalfPrecision(DType::BF16);
}
TEST(Checkpoints, F16Weights) {
  checkHalfPrecision(DType::F16);
}

TEST(Tools, GenerateJsonAndHelp) {
  std::string d = copyModel("qwen3_moe", "gen_json");
  ASSERT_EQ(run(kCompile + " " + d + " -o " + d + "/p.ktplan").code, 0);
  Result r = run(kRt + " generate " + d + "/p.ktplan --ids 5,17,42 -n 4 --temperature 0 --json");
  ASSERT_EQ(r.code, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["new_ids"].size(), 4u);
  EXPECT_TRUE(j.contains("prefill_tok_s"));
  EXPECT_TRUE(j.contains("decode_tok_s"));
  r = run(kRt + " generate " + d + "/p.ktplan --ids 5,17,42 --ids 9 -n 3 --json");
  ASSERT_EQ(r.code, 0) << r.output;
  j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["sequences"].size(), 2u);
  r = run(kRt + " bench " + d + "/p.ktplan --prompt-len 8 --gen-len 4 --reps 1 --json");
  ASSERT_EQ(r.code, 0) << r.output;
  j = nlohmann::json::parse(r.output);
  EXPECT_GT(j["decode_tok_s"].get<double>(), 0);
  EXPECT_GT(j["prefill_tok_s"].get<double>(), 0);
  EXPECT_GT(j["active_weight_bytes_per_token"].get<double>(), 0);
  EXPECT_GT(j["decode_roofline_tok_s"].get<double>(), 0);
  // --profile with one rep: a warm-up rep runs first, unprofiled; the table holds one prefill.
  r = run(kRt + " bench " + d + "/p.ktplan --prompt-len 8 --gen-len 4 --reps 1 --profile");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(\nprefill/embedding +1 )"))) << r.output;
  // --profile-layers: each decoder layer's steps apart (layer 0's and 1's attention), the
  // embedding (no layer) as before.
  r = run(kRt + " bench " + d + "/p.ktplan --prompt-len 8 --gen-len 4 --reps 1 --profile-layers");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(\nprefill/embedding +1 )"))) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(\nprefill/\w*attention@00 +1 )")))
      << r.output;
  EXPECT_TRUE(std::regex_search(r.output, std::regex(R"(\nprefill/\w*attention@01 +1 )")))
      << r.output;
  r = run(kCompile + " --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.output.find("--target"), std::string::npos);
  EXPECT_NE(r.output.find("deepseek_v3"), std::string::npos);
}

} // namespace

namespace {

// The bundled demo model through the text commands: run prints exactly the reference texts.
TEST(TextCommands, RunTokenizeDetokenizeChatPerplexity) {
  const std::string dir = std::string(KT_EXAMPLES_DIR) + "/austen-moe";
  std::string d = tempDir("text");
  std::string plan = d + "/austen.ktplan";
  ASSERT_EQ(run(kCompile + " " + dir + " -o " + plan).code, 0);
  nlohmann::json ref;
  std::ifstream(dir + "/reference.json") >> ref;
  for (const auto& g : ref["greedy"]) {
    std::string prompt = g["prompt"];
    Result r = run(kRt + " run " + plan + " -p '" + prompt + "' -n 32 --ignore-eos 2>/dev/null");
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_EQ(r.output, g["text"].get<std::string>());
    r = run(kRt + " tokenize " + plan + " --text '" + prompt + "' --special");
    EXPECT_EQ(nlohmann::json::parse(r.output), g["prompt_ids"]) << r.output;
  }
  Result r = run(kRt + " detokenize " + plan + " --ids 1,17636,8010,6186,403 --skip-special");
  EXPECT_EQ(r.output, "Emma Woodhouse was\n");
  r = run(kRt + " tokenize --tokenizer " + dir + "/tokenizer.json --text 'Emma Woodhouse was'");
  EXPECT_EQ(r.output, "[17636,8010,6186,403]\n");
  // With EOS honoured, run stops where the model ends its text; the summary line says so.
  r = run(kRt + " run " + plan + " -p 'Emma Woodhouse was' -n 32");
  EXPECT_NE(r.output.find("end of text"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("decode"), std::string::npos);
  // --stop cuts the text before the stop string.
  r = run(kRt + " run " + plan +
          " -p 'It is a truth universally acknowledged' -n 32 --stop impossible 2>/dev/null");
  EXPECT_EQ(r.output, "It is a truth universally acknowledged, and it is ");
  // chat: two turns from stdin, then EOF ends the session cleanly.
  r = run("printf 'Hello\\nHow are you?\\n' | " + kRt + " chat " + plan + " -n 8 --seed 3");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("cached"), std::string::npos);
  // perplexity on a paragraph of Austen (in-distribution) is far below chance (ln 32000 = 10.4).
  std::ofstream(d + "/austen.txt")
      << "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy "
         "disposition, seemed to unite some of the best blessings of existence; and had lived "
         "nearly twenty-one years in the world with very little to distress or vex her.";
  r = run(kRt + " perplexity " + plan + " --text-file " + d + "/austen.txt --json 2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_LT(j["loss"].get<double>(), 6.0);
  EXPECT_GT(j["tokens"].get<int>(), 40);
  // Weights are mapped, not copied: peak memory of a generate run stays near the mapped bytes
  // (21.5 MB of bf16 weights) plus a small working set, and shrinks with an int4 sidecar.
  auto rssKb = [&](const std::string& planPath) {
    run("/usr/bin/time -f 'maxrss=%M' -o " + d + "/rss.txt " + kRt + " generate " + planPath +
        " --ids 1,560,272,5398 -n 16");
    std::ifstream in(d + "/rss.txt");
    std::string line;
    std::getline(in, line);
    return line.rfind("maxrss=", 0) == 0 ? std::stol(line.substr(7)) : -1L;
  };
  long plainKb = rssKb(plan);
  EXPECT_GT(plainKb, 0) << "needs /usr/bin/time (Debian package 'time')";
  EXPECT_LT(plainKb, (21500 + 24000)) << "kt-rt read the weights instead of mapping them?";
  ASSERT_EQ(run(kCompile + " " + dir + " -o " + d + "/q.ktplan --cpu-quant int4").code, 0);
  long int4Kb = rssKb(d + "/q.ktplan");
  EXPECT_GT(int4Kb, 0);
  EXPECT_LT(int4Kb, plainKb) << "an int4 plan maps 6 MB instead of 21.5 MB";
  // A plan compiled from a folder without tokenizer.json says so.
  std::string bare = copyModel("llama", "no_tokenizer");
  ASSERT_EQ(run(kCompile + " " + bare + " -o " + bare + "/p.ktplan").code, 0);
  expectError(run(kRt + " run " + bare + "/p.ktplan -p hi"), {"embeds no tokenizer"});
}

} // namespace
