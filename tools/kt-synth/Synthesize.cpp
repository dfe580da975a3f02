#include "tools/kt-synth/Synthesize.h"

#include "runtime/io/MappedFile.h"
#include "runtime/support/Error.h"
#include "tools/kt-synth/Encode.h"
#include "tools/kt-synth/Progress.h"
#include "tools/kt-synth/Random.h"
#include "tools/kt-synth/SafetensorsStream.h"
#include "tools/kt-synth/WeightInit.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sys/statvfs.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace kt::synth {

namespace {

// Marks every checkpoint file kt-synth writes, so a later run replaces only its own files.
const char* const kGenerator = "kt-synth";

Metadata fileMetadata(const SynthOptions& opt) {
  return {{"generator", kGenerator}, {"seed", std::to_string(opt.seed)}};
}

const char* torchDtypeName(DType t) {
  switch (t) {
  case DType::BF16:
    return "bfloat16";
  case DType::F16:
    return "float16";
  default:
    return "float32";
  }
}

// The config as the user gave it, edited: ordered_json keeps the hub's field order.
std::string editConfig(const SynthOptions& opt, std::vector<std::string>& notes) {
  const std::string text = readTextFile(opt.configPath);
  nlohmann::ordered_json j =
      nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  // Malformed JSON or a non-object: let the importer's parser produce its usual message.
  if (j.is_discarded() || !j.is_object()) {
    (void)hf::parseConfigText(text, opt.configPath);
    throw Error(opt.configPath + ": expected a JSON object");
  }
  for (const auto& [key, value] : opt.overrides) {
    // A value is JSON when it parses as JSON (numbers, true, null, lists), else a plain string.
    nlohmann::ordered_json v = nlohmann::ordered_json::parse(value, nullptr, false);
    if (v.is_discarded())
      v = value;
    j[key] = v;
    notes.push_back("set " + key + " = " + v.dump());
  }
  if (opt.layers > 0) {
    j["num_hidden_layers"] = opt.layers;
    notes.push_back("num_hidden_layers = " + std::to_string(opt.layers));
  }
  // The checkpoint's dtype is ours; a quantization_config would promise tensors (fp8 scales)
  // that are not written.
  for (const char* k : {"torch_dtype", "dtype"})
    if (j.contains(k) && j[k].is_string())
      j[k] = torchDtypeName(opt.dtype);
  if (j.contains("quantization_config")) {
    j.erase("quantization_config");
    notes.push_back("dropped quantization_config (weights are written unquantized)");
  }
  return j.dump(2) + "\n";
}

// Whether a checkpoint file carries kt-synth's mark (safetensors __metadata__ or the index's
// metadata): only those are ever deleted, never a real model that shares the folder.
bool writtenBySynth(const fs::path& p) {
  const std::string name = p.filename().string();
  if (name.size() > 8 && name.compare(name.size() - 8, 8, ".partial") == 0)
    return true;
  std::ifstream f(p, std::ios::binary);
  nlohmann::json j;
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) {
    j = nlohmann::json::parse(f, nullptr, false);
    return j.is_object() && j.contains("metadata") && j["metadata"].is_object() &&
           j["metadata"].value("generator", "") == kGenerator;
  }
  unsigned char len[8];
  if (!f.read(reinterpret_cast<char*>(len), 8))
    return false;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = n << 8 | len[i];
  if (n > (256u << 20))
    return false;
  std::string header(n, '\0');
  if (!f.read(header.data(), std::streamsize(n)))
    return false;
  j = nlohmann::json::parse(header, nullptr, false);
  return j.is_object() && j.contains("__metadata__") && j["__metadata__"].is_object() &&
         j["__metadata__"].value("generator", "") == kGenerator;
}

// Files of an earlier checkpoint in OUT_DIR that would mix with ours (an index left beside a new
// model.safetensors would win over it). Throws when one was not written by kt-synth.
std::vector<fs::path> staleCheckpointFiles(const std::string& dir) {
  static const std::regex pattern(
      R"(model(-\d+-of-\d+)?\.safetensors(\.index\.json)?(\.partial)?)");
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!std::regex_match(e.path().filename().string(), pattern))
      continue;
    if (!writtenBySynth(e.path()))
      throw Error(e.path().string() +
                  ": a checkpoint file not written by kt-synth is in the output folder; "
                  "refusing to replace it (choose another OUT_DIR)");
    out.push_back(e.path());
  }
  return out;
}

void writeTextAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".partial";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f)
      throw Error(tmp + ": cannot create: " + std::strerror(errno));
    f << text;
    f.flush();
    if (!f) {
      fs::remove(tmp);
      throw Error(tmp + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    throw Error(path + ": cannot rename from .partial: " + ec.message());
}

void prepareOutDir(const SynthPlan& plan, const SynthOptions& opt) {
  const std::string& dir = opt.outDir;
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw Error(dir + ": exists and is not a directory");
  fs::create_directories(dir, ec);
  if (ec)
    throw Error(dir + ": cannot create directory: " + ec.message());
  if (::access(dir.c_str(), W_OK) != 0)
    throw Error(dir + ": not writable: " + std::strerror(errno));

  uint64_t staleBytes = 0;
  const auto stale = staleCheckpointFiles(dir);
  for (const auto& p : stale)
    staleBytes += fs::file_size(p, ec);
  // Refuse before writing gigabytes rather than fail at the end of the disk.
  struct statvfs vfs;
  if (!opt.layoutOnly && ::statvfs(dir.c_str(), &vfs) == 0) {
    const uint64_t free = uint64_t(vfs.f_bavail) * uint64_t(vfs.f_frsize) + staleBytes;
    const uint64_t need = plan.fileBytes + plan.configText.size() + (1u << 20);
    if (need > free)
      throw Error(dir + ": not enough disk space: the checkpoint needs " + humanBytes(need) + ", " +
                  humanBytes(free) + " is free (use --layers to make it smaller)");
  }
  for (const auto& p : stale) {
    fs::remove(p, ec);
    if (ec)
      throw Error(p.string() + ": cannot remove the earlier checkpoint file: " + ec.message());
  }
  if (!stale.empty())
    std::fprintf(stderr, "kt-synth: removed %zu file(s) of an earlier checkpoint in %s\n",
                 stale.size(), dir.c_str());
}

// Generates tensor `t` chunk by chunk straight into the file: a chunk of f32 values and its
// encoded bytes are all the memory a tensor of any size needs.
void streamTensor(SafetensorsStreamWriter& w, const hf::CheckpointTensor& t, DType dtype,
                  uint64_t seed, Progress& progress, std::vector<float>& values,
                  std::vector<uint8_t>& bytes) {
  const InitRule rule = initRule(t);
  const uint64_t key = streamKey(seed, t.name);
  const uint64_t n = uint64_t(t.numel());
  const size_t chunk = values.size();
  const size_t elemBytes = dtypeSize(dtype);
  for (uint64_t i = 0; i < n; i += chunk) {
    const size_t k = size_t(std::min<uint64_t>(chunk, n - i));
    fillNormal(key, i, k, rule.mean, rule.std, values.data());
    encode(values.data(), k, dtype, bytes.data());
    w.append(bytes.data(), k * elemBytes);
    progress.add(0, k * elemBytes);
  }
  progress.add(1, 0);
}

std::vector<StreamTensor> shardTensors(const SynthPlan& plan, const Shard& s, DType dtype,
                                       std::vector<size_t>* order) {
  // Inside a file the safetensors library orders tensors by name (all share one dtype here).
  *order = s.tensors;
  std::sort(order->begin(), order->end(),
            [&](size_t a, size_t b) { return plan.tensors[a].name < plan.tensors[b].name; });
  std::vector<StreamTensor> out;
  out.reserve(order->size());
  for (size_t i : *order)
    out.push_back({plan.tensors[i].name, dtype, plan.tensors[i].shape});
  return out;
}

} // namespace

SynthPlan planSynthesis(const SynthOptions& opt) {
  SynthPlan p;
  p.configText = editConfig(opt, p.notes);
  p.config = hf::parseConfigText(p.configText, opt.configPath);
  p.tensors = hf::checkpointTensors(p.config);
  std::vector<uint64_t> sizes;
  sizes.reserve(p.tensors.size());
  const uint64_t elem = dtypeSize(opt.dtype);
  for (const auto& t : p.tensors) {
    p.parameters += uint64_t(t.numel());
    sizes.push_back(uint64_t(t.numel()) * elem);
    p.dataBytes += sizes.back();
  }
  p.shards = planShards(sizes, opt.shardBytes);
  std::vector<size_t> order;
  for (const Shard& s : p.shards)
    p.fileBytes += safetensorsFileSize(shardTensors(p, s, opt.dtype, &order), fileMetadata(opt));
  if (p.shards.size() > 1) {
    std::vector<std::string> names;
    for (const auto& t : p.tensors)
      names.push_back(t.name);
    p.fileBytes += shardIndexJson(p.shards, names, fileMetadata(opt)).size();
  }
  return p;
}

void writeCheckpoint(const SynthPlan& plan, const SynthOptions& opt) {
  prepareOutDir(plan, opt);
  Progress progress(plan.tensors.size(), plan.dataBytes, opt.progress);
  // 1 Mi values per chunk: 4 MB of f32 plus at most 4 MB encoded.
  std::vector<float> values(size_t(1) << 20);
  std::vector<uint8_t> bytes(values.size() * 4);
  std::vector<size_t> order;
  for (const Shard& s : plan.shards) {
    std::vector<StreamTensor> tensors = shardTensors(plan, s, opt.dtype, &order);
    SafetensorsStreamWriter w(opt.outDir + "/" + s.file, tensors, fileMetadata(opt));
    for (size_t i : order) {
      if (opt.layoutOnly) {
        const uint64_t n = uint64_t(plan.tensors[i].numel()) * dtypeSize(opt.dtype);
        w.skip(n);
        progress.add(1, n);
      } else {
        streamTensor(w, plan.tensors[i], opt.dtype, opt.seed, progress, values, bytes);
      }
    }
    w.finish();
  }
  if (plan.shards.size() > 1) {
    std::vector<std::string> names;
    for (const auto& t : plan.tensors)
      names.push_back(t.name);
    writeTextAtomically(opt.outDir + "/model.safetensors.index.json",
                        shardIndexJson(plan.shards, names, fileMetadata(opt)));
  }
  // Last, so a folder whose run failed midway has no config.json that would make it look usable.
  writeTextAtomically(opt.outDir + "/config.json", plan.configText);
  const double s = progress.finish();
  std::fprintf(
      stderr,
      "kt-synth: wrote %zu tensors%s, %llu parameters, %s (%s) in %zu file(s) to %s in %.1f "
      "s (%.0f MB/s), "
      "seed %llu\n",
      plan.tensors.size(), opt.layoutOnly ? " (layout only: data left as holes)" : "",
      static_cast<unsigned long long>(plan.parameters), humanBytes(plan.dataBytes).c_str(),
      dtypeName(opt.dtype), plan.shards.size(), opt.outDir.c_str(), s,
      s > 0 ? double(plan.dataBytes) / 1e6 / s : 0.0, static_cast<unsigned long long>(opt.seed));
}

} // namespace kt::synth
