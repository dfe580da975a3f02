#include "frontends/hf/PeftAdapter.h"

#include "runtime/io/MappedFile.h"
#include "runtime/io/Safetensors.h"
#include "runtime/schema/plan_generated.h"
#include "runtime/support/Error.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>

namespace kt::hf {

namespace {

using nlohmann::json;

const std::string kPeftPrefix = "base_model.model.";

bool matchesSuffix(const std::string& path, const std::string& key) {
  return path == key || (path.size() > key.size() &&
                         path.compare(path.size() - key.size(), key.size(), key) == 0 &&
                         path[path.size() - key.size() - 1] == '.');
}

// PEFT's get_pattern_key: re.match(rf"(.*\.)?({key})$", path).
double patternValue(const std::vector<std::pair<std::string, double>>& ps, const std::string& path,
                    double fallback) {
  for (const auto& [key, v] : ps)
    if (std::regex_match(path, std::regex("(.*\\.)?(" + key + ")")))
      return v;
  return fallback;
}

std::vector<float> toF32(const uint8_t* p, DType t, size_t n, const std::string& what) {
  std::vector<float> v(n);
  switch (t) {
  case DType::F32:
    std::memcpy(v.data(), p, n * 4);
    break;
  case DType::BF16:
  case DType::F16:
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      v[i] = t == DType::BF16 ? bf16ToF32(h) : f16ToF32(h);
    }
    break;
  default:
    throw Error(what + ": dtype " + dtypeName(t) + " cannot hold a LoRA tensor or weight");
  }
  return v;
}

// A 2-D tensor of the adapter file, as f32.
struct Matrix {
  std::vector<float> v;
  int64_t rows = 0, cols = 0;
};
Matrix readMatrix(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo* t = f.find(name);
  if (!t)
    throw Error(f.path() + ": missing tensor " + name);
  if (t->shape.size() != 2)
    throw Error(f.path() + ": tensor " + name + " must be 2-D");
  return {toF32(f.data(*t), t->dtype, size_t(t->numel()), f.path() + ": " + name), t->shape[0],
          t->shape[1]};
}

std::string shapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// One slice of a weight (a whole matrix, or one expert of a stacked weight) being merged.
struct Slice {
  int weight = -1;
  int expert = -1; // -1: the whole (2-D) weight
};

} // namespace

PeftConfig readPeftConfig(const std::string& path) {
  json j;
  try {
    j = json::parse(readTextFile(path));
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  PeftConfig c;
  auto field = [&](const char* k) -> const json* {
    auto it = j.find(k);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  };
  try {
    if (auto* t = field("peft_type"); t && t->get<std::string>() != "LORA")
      throw Error(path + ": peft_type is " + t->get<std::string>() + ", only LORA is supported");
    if (auto* r = field("r"))
      c.r = r->get<int>();
    if (auto* a = field("lora_alpha"))
      c.alpha = a->get<double>();
    if (auto* t = field("target_modules")) {
      if (t->is_string() && t->get<std::string>() == "all-linear")
        c.targetModules = {"all-linear"};
      else if (t->is_string())
        throw Error(path + ": target_modules is a regex string ('" + t->get<std::string>() +
                    "'); give the module names as a list");
      else
        c.targetModules = t->get<std::vector<std::string>>();
    }
    if (auto* t = field("target_parameters"))
      c.targetParameters = t->get<std::vector<std::string>>();
    if (auto* p = field("rank_pattern"))
      for (auto& [k, v] : p->items())
        c.rankPattern.push_back({k, v.get<double>()});
    if (auto* p = field("alpha_pattern"))
      for (auto& [k, v] : p->items())
        c.alphaPattern.push_back({k, v.get<double>()});
    if (auto* f = field("use_dora"); f && f->get<bool>())
      throw Error(path + ": use_dora = true is not supported");
    if (auto* f = field("use_rslora"))
      c.useRslora = f->get<bool>();
    // PEFT itself resets fan_in_fan_out to false (with a warning) for nn.Linear targets, and every
    // projection KT adapts is one: the A/B tensors are the same either way.
    if (auto* f = field("fan_in_fan_out"); f && f->get<bool>())
      c.warnings.push_back("fan_in_fan_out = true is ignored, as PEFT does for nn.Linear "
                           "projections (it only applies to Conv1D weights stored [in, out])");
    // Settings that would change which modules carry adapters: refused rather than ignored, so a
    // plan never silently trains (or merges into) a different set than PEFT would.
    for (const char* k : {"layers_to_transform", "layers_pattern", "exclude_modules",
                          "modules_to_save", "trainable_token_indices", "layer_replication"})
      if (auto* f = field(k); f && !f->empty())
        throw Error(path + ": " + k + " is not supported (" + f->dump() + ")");
    if (auto* b = field("bias"); b && b->get<std::string>() != "none")
      throw Error(path + ": bias = \"" + b->get<std::string>() +
                  "\" is not supported (only \"none\": biases stay frozen)");
    if (auto* d = field("lora_dropout"); d && d->get<double>() > 0)
      c.warnings.push_back("lora_dropout = " + d->dump() +
                           " is ignored: KT trains without dropout");
  } catch (const json::exception& e) {
    throw Error(path + ": a LoRA field has the wrong type: " + e.what());
  }
  if (c.r <= 0 || c.alpha <= 0)
    throw Error(path + ": r and lora_alpha must be positive");
  return c;
}

double peftScale(const PeftConfig& c, double alpha, int64_t r) {
  return c.useRslora ? alpha / std::sqrt(double(r)) : alpha / double(r);
}

std::vector<std::pair<std::string, std::string>>
fusedExpertAdapterNames(const std::string& experts, const std::vector<std::string>& targets) {
  std::vector<std::string> params;
  for (const char* p : {"gate_up_proj", "down_proj"})
    for (const std::string& key : targets)
      if (matchesSuffix(experts + "." + p, key)) {
        params.push_back(p);
        break;
      }
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t k = 0; k < params.size(); ++k) {
    std::string name = experts;
    for (size_t i = k + 1; i < params.size(); ++i)
      name += ".base_layer";
    out.push_back({params[k], name});
  }
  return out;
}

MergeStats mergePeftAdapter(ModelDesc& model, const std::string& dir, const std::string& outPath) {
  PeftConfig cfg = readPeftConfig(dir + "/adapter_config.json");
  SafetensorsFile adapter(dir + "/adapter_model.safetensors");
  const std::string where = dir + "/adapter_model.safetensors";

  // Every module the adapter file has an A/B pair for.
  std::set<std::string> modules;
  for (const auto& [name, t] : adapter.tensors()) {
    const std::string a = ".lora_A.weight", b = ".lora_B.weight";
    bool isA = name.size() > a.size() && name.compare(name.size() - a.size(), a.size(), a) == 0;
    bool isB = name.size() > b.size() && name.compare(name.size() - b.size(), b.size(), b) == 0;
    if (!isA && !isB)
      throw Error(where + ": tensor " + name +
                  " is not a LoRA A/B weight (only plain LoRA "
                  "adapters can be merged)");
    if (name.rfind(kPeftPrefix, 0) != 0)
      throw Error(where + ": tensor " + name + " does not start with " + kPeftPrefix);
    modules.insert(name.substr(0, name.size() - a.size()));
  }

  // PEFT module -> what it updates: an nn.Linear weight, or a fused experts parameter.
  std::map<std::string, int> linear; // module path -> weight index
  for (size_t i = 0; i < model.weights.size(); ++i) {
    const std::string& hf = model.weights[i].hfName;
    if (hf.find("{e}") == std::string::npos && hf.size() > 7 &&
        hf.compare(hf.size() - 7, 7, ".weight") == 0)
      linear[kPeftPrefix + hf.substr(0, hf.size() - 7)] = int(i);
  }
  struct Fused {
    std::string param;
    std::vector<int> weights; // gate, up (gate_up_proj) or down
    std::string path;         // parameter path (rank/alpha patterns)
  };
  std::map<std::string, Fused> fused;
  for (const LayerDesc& L : model.layers) {
    if (!L.moe)
      continue;
    auto role = [&](const char* r) {
      auto it = L.ffn.find(r);
      return it == L.ffn.end() ? -1 : it->second;
    };
    int gate = role("gate"), up = role("up"), down = role("down");
    if (gate < 0 || up < 0 || down < 0)
      continue;
    const std::string& hf = model.weights[size_t(gate)].hfName;
    size_t at = hf.find(".{e}");
    if (at == std::string::npos)
      continue;
    std::string experts = hf.substr(0, at);
    for (auto& [param, name] : fusedExpertAdapterNames(experts, cfg.targetParameters))
      fused[kPeftPrefix + name] = {
          param, param == "gate_up_proj" ? std::vector<int>{gate, up} : std::vector<int>{down},
          experts + "." + param};
  }

  // The merged f32 values of every weight an adapter touches.
  std::map<int, std::vector<float>> merged;
  auto values = [&](int w) -> std::vector<float>& {
    auto it = merged.find(w);
    if (it != merged.end())
      return it->second;
    const WeightDesc& d = model.weights[size_t(w)];
    std::vector<float> all;
    for (const WeightSegment& s : d.segments) {
      MappedFile f(model.files[size_t(s.file)]);
      if (s.offset + s.size > f.size())
        throw Error(model.files[size_t(s.file)] + ": weight " + d.hfName + " lies past the end");
      std::vector<float> part =
          toF32(f.data() + s.offset, d.dtype, size_t(s.size / dtypeSize(d.dtype)), d.hfName);
      all.insert(all.end(), part.begin(), part.end());
    }
    return merged[w] = std::move(all);
  };

  MergeStats stats;
  for (const std::string& m : modules) {
    Matrix A = readMatrix(adapter, m + ".lora_A.weight");
    Matrix B = readMatrix(adapter, m + ".lora_B.weight");
    const std::string path = m.substr(kPeftPrefix.size());
    if (auto it = linear.find(m); it != linear.end()) {
      const WeightDesc& d = model.weights[size_t(it->second)];
      const int64_t out = d.shape[0], in = d.shape[1], r = A.rows;
      if (A.cols != in || B.rows != out || B.cols != r)
        throw Error(where + ": " + m + " has lora_A [" + std::to_string(A.rows) + ", " +
                    std::to_string(A.cols) + "] and lora_B [" + std::to_string(B.rows) + ", " +
                    std::to_string(B.cols) + "], weight " + d.hfName + " is [" +
                    std::to_string(out) + ", " + std::to_string(in) + "]");
      const double scale = peftScale(cfg, patternValue(cfg.alphaPattern, path, cfg.alpha), r);
      std::vector<float>& W = values(it->second);
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) {
          float acc = 0;
          for (int64_t j = 0; j < r; ++j)
            acc += B.v[size_t(o * r + j)] * A.v[size_t(j * in + i)];
          W[size_t(o * in + i)] += float(scale) * acc;
        }
    } else if (auto f = fused.find(m); f != fused.end()) {
      const Fused& fu = f->second;
      const WeightDesc& first = model.weights[size_t(fu.weights[0])];
      const int64_t E = first.shape[0], rowsPer = first.shape[1], in = first.shape[2];
      const int64_t out = rowsPer * int64_t(fu.weights.size());
      if (A.rows % E != 0 || A.cols != in || B.rows != out || B.cols != A.rows)
        throw Error(where + ": " + m + " (fused " + fu.param + " of " + std::to_string(E) +
                    " experts) has lora_A [" + std::to_string(A.rows) + ", " +
                    std::to_string(A.cols) + "] and lora_B [" + std::to_string(B.rows) + ", " +
                    std::to_string(B.cols) + "]; expected [E*r, " + std::to_string(in) + "] and [" +
                    std::to_string(out) + ", E*r]");
      const int64_t r = A.rows / E;
      const double scale = peftScale(cfg, patternValue(cfg.alphaPattern, fu.path, cfg.alpha), r);
      // PEFT's ParamWrapper: expert e's A rows e·r.., its B column j at j·E + e.
      for (size_t t = 0; t < fu.weights.size(); ++t) {
        std::vector<float>& W = values(fu.weights[t]);
        for (int64_t e = 0; e < E; ++e)
          for (int64_t o = 0; o < rowsPer; ++o)
            for (int64_t i = 0; i < in; ++i) {
              float acc = 0;
              for (int64_t j = 0; j < r; ++j)
                acc += B.v[size_t((int64_t(t) * rowsPer + o) * A.rows + j * E + e)] *
                       A.v[size_t((e * r + j) * in + i)];
              W[size_t((e * rowsPer + o) * in + i)] += float(scale) * acc;
            }
      }
    } else {
      throw Error(where + ": adapter module " + m +
                  " matches no projection of this model (nn.Linear modules and fused experts "
                  "of the target_parameters in adapter_config.json)");
    }
    ++stats.adapters;
  }

  // Write the merged weights as f32 and point the model at them.
  std::ofstream os(outPath, std::ios::binary | std::ios::trunc);
  if (!os)
    throw Error(outPath + ": cannot create the merged-weights file");
  const int file = int(model.files.size());
  uint64_t offset = 0;
  for (auto& [w, v] : merged) {
    WeightDesc& d = model.weights[size_t(w)];
    const uint64_t bytes = uint64_t(v.size()) * 4, slices = d.segments.size();
    os.write(reinterpret_cast<const char*>(v.data()), std::streamsize(bytes));
    d.segments.clear();
    for (uint64_t s = 0; s < slices; ++s)
      d.segments.push_back({file, offset + s * (bytes / slices), bytes / slices});
    d.dtype = DType::F32;
    offset += bytes;
  }
  os.close();
  if (!os)
    throw Error(outPath + ": write failed (disk full?)");
  model.files.push_back(outPath);
  model.fileSizes.push_back(offset);
  stats.bytesWritten = offset;
  return stats;
}

EmbedStats embedPeftAdapter(plan::PlanT& plan, const std::string& dir) {
  PeftConfig cfg = readPeftConfig(dir + "/adapter_config.json");
  const std::string where =
      std::filesystem::absolute(dir + "/adapter_model.safetensors").lexically_normal().string();
  SafetensorsFile adapter(where);
  if (plan.adapters.empty())
    throw Error(dir + "/adapter_config.json: its targets declared no adapter in this model");

  // The adapter file joins the plan's weight files; its tensors are mapped where they are.
  uint32_t file = 0;
  while (file < plan.weight_files.size() && plan.weight_files[file]->path != where)
    ++file;
  if (file == plan.weight_files.size()) {
    auto f = std::make_unique<plan::WeightFileT>();
    f->path = where;
    f->size = std::filesystem::file_size(where);
    plan.weight_files.push_back(std::move(f));
  }
  std::set<std::string> used;
  // Plan weight index of tensor `name`, which must be [rows, cols].
  auto weightOf = [&](const plan::AdapterT& a, const std::string& name, int64_t rows, int64_t cols,
                      uint16_t device) {
    const TensorInfo* t = adapter.find(name);
    if (!t)
      throw Error(where + ": missing tensor " + name + " (adapter " + a.name + " is [" +
                  std::to_string(a.in_features) + " -> " + std::to_string(a.out_features) +
                  "], r = " + std::to_string(a.r) + ")");
    if (t->shape != std::vector<int64_t>{rows, cols})
      throw Error(where + ": tensor " + name + " has shape " + shapeString(t->shape) +
                  ", the model's projection needs [" + std::to_string(rows) + ", " +
                  std::to_string(cols) + "] (r = " + std::to_string(a.r) +
                  (a.num_experts > 0 ? ", " + std::to_string(a.num_experts) + " experts" : "") +
                  ")");
    if (t->dtype != DType::F32 && t->dtype != DType::BF16 && t->dtype != DType::F16)
      throw Error(where + ": tensor " + name + " is " + dtypeName(t->dtype) +
                  "; a LoRA tensor must be f32, bf16 or f16");
    used.insert(name);
    auto w = std::make_unique<plan::WeightT>();
    w->name = name;
    w->dtype = plan::DType(uint8_t(t->dtype)); // kt::DType and plan::DType share their values
    w->shape = {rows, cols};
    w->layout = plan::Layout::RowMajor;
    w->segments.push_back(plan::Segment(file, t->offset, t->size));
    w->device = device;
    plan.weights.push_back(std::move(w));
    return int32_t(plan.weights.size() - 1);
  };

  EmbedStats stats;
  for (auto& a : plan.adapters) {
    if (a->init_a >= 0 || a->init_b >= 0)
      throw Error("adapter " + a->name + " already has values in the plan");
    const int64_t E = a->layout == plan::AdapterLayout::ExpertsFused ? a->num_experts : 1;
    const int64_t rows = E * a->r;
    // The adapter lives where the weight it updates does (its first target).
    const uint16_t device = a->targets.empty() ? 0 : plan.weights[a->targets[0]->weight]->device;
    a->init_a = weightOf(*a, a->name + ".lora_A.weight", rows, a->in_features, device);
    a->init_b = weightOf(*a, a->name + ".lora_B.weight", a->out_features, rows, device);
    if (cfg.useRslora) // the runtime scales by alpha / r; PEFT's rsLoRA by alpha / sqrt(r)
      a->alpha *= std::sqrt(double(a->r));
    stats.bytes += uint64_t(E * a->r * (a->in_features + a->out_features)) *
                   dtypeSize(adapter.find(a->name + ".lora_A.weight")->dtype);
    ++stats.adapters;
  }
  for (const auto& [name, t] : adapter.tensors())
    if (!used.count(name))
      throw Error(where + ": tensor " + name +
                  " belongs to no adapter of this model (the adapter_config.json targets declare " +
                  std::to_string(plan.adapters.size()) +
                  " modules; is the adapter for another model?)");
  return stats;
}

} // namespace kt::hf
