#include "runtime/train/PeftIO.h"

#include "runtime/io/MappedFile.h"
#include "runtime/io/Safetensors.h"
#include "runtime/support/Error.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

namespace kt::train {

namespace {

const std::string kModelFile = "adapter_model.safetensors";
const std::string kConfigFile = "adapter_config.json";

// PEFT's rank_pattern/alpha_pattern key of an adapter: its module path without PEFT's
// "base_model.model." prefix (fused experts: the parameter the adapter wraps), regex-escaped.
std::string patternKey(const AdapterState& a) {
  std::string n = a.name;
  const std::string pre = "base_model.model.";
  if (n.rfind(pre, 0) == 0)
    n = n.substr(pre.size());
  if (a.expertsFused) {
    const std::string bl = ".base_layer";
    if (n.size() > bl.size() && n.compare(n.size() - bl.size(), bl.size(), bl) == 0)
      n.resize(n.size() - bl.size());
    n += a.gateUp ? ".gate_up_proj" : ".down_proj";
  }
  std::string esc;
  for (char c : n) {
    if (c == '.')
      esc += '\\';
    esc += c;
  }
  return esc;
}

std::vector<float> readF32(const SafetensorsFile& f, const TensorInfo& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  const uint8_t* p = f.data(t);
  switch (t.dtype) {
  case DType::F32:
    std::memcpy(v.data(), p, v.size() * 4);
    break;
  case DType::BF16:
  case DType::F16:
    for (size_t i = 0; i < v.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      v[i] = t.dtype == DType::BF16 ? bf16ToF32(h) : f16ToF32(h);
    }
    break;
  default:
    throw Error(f.path() + ": tensor " + t.name + " has dtype " + dtypeName(t.dtype) +
                "; LoRA tensors must be f32, bf16 or f16");
  }
  return v;
}

std::string shapeText(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i)
    r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

const TensorInfo& requireTensor(const SafetensorsFile& f, const std::string& name,
                                std::vector<int64_t> shape) {
  const TensorInfo* t = f.find(name);
  if (!t)
    throw Error(f.path() + ": missing tensor " + name + " (the plan has this adapter)");
  if (t->shape != shape)
    throw Error(f.path() + ": tensor " + name + " is " + shapeText(t->shape) +
                ", the plan's adapter is " + shapeText(shape));
  return *t;
}

void writeTensors(const std::string& path, const AdapterSet& set,
                  const std::vector<std::pair<std::string, int>>& kinds) {
  // kinds: (suffix, which) with which: 0 = A/B values, 1 = first moments, 2 = second moments.
  std::vector<std::vector<float>> keep;
  keep.reserve(set.size() * kinds.size() * 2);
  std::vector<OutTensor> out;
  for (size_t i = 0; i < set.size(); ++i) {
    const AdapterState& a = set[i];
    for (const auto& [suffix, which] : kinds) {
      const std::vector<float>& A = which == 0 ? a.A : which == 1 ? a.mA : a.vA;
      const std::vector<float>& B = which == 0 ? a.B : which == 1 ? a.mB : a.vB;
      out.push_back({a.name + ".lora_A." + suffix, DType::F32, {a.aRows(), a.in}, A.data()});
      keep.push_back(set.peftB(a, B));
      out.push_back(
          {a.name + ".lora_B." + suffix, DType::F32, {a.out, a.aRows()}, keep.back().data()});
    }
  }
  writeSafetensors(path, out);
}

void readTensors(const std::string& path, AdapterSet& set, const std::string& suffix, int which,
                 bool strict) {
  SafetensorsFile f(path);
  std::set<std::string> used;
  for (size_t i = 0; i < set.size(); ++i) {
    AdapterState& a = set[i];
    const std::string na = a.name + ".lora_A." + suffix, nb = a.name + ".lora_B." + suffix;
    std::vector<float> A = readF32(f, requireTensor(f, na, {a.aRows(), a.in}));
    std::vector<float> B = readF32(f, requireTensor(f, nb, {a.out, a.aRows()}));
    used.insert(na);
    used.insert(nb);
    // Copied into the existing storage: executors hold pointers to it.
    std::vector<float>& dst = which == 0 ? a.A : which == 1 ? a.mA : a.vA;
    std::copy(A.begin(), A.end(), dst.begin());
    set.setPeftB(a, which == 0 ? a.B : which == 1 ? a.mB : a.vB, B.data());
  }
  if (!strict)
    return;
  for (const auto& [name, t] : f.tensors())
    if (!used.count(name) && name.find(".lora_") != std::string::npos)
      throw Error(path + ": tensor " + name +
                  " belongs to no adapter of the plan (compile the plan with the adapter's "
                  "targets: kt-compile --train lora --lora-config DIR/adapter_config.json)");
}

} // namespace

void savePeftAdapter(const std::string& dir, const AdapterSet& set, const PeftConfigInfo& info) {
  std::filesystem::create_directories(dir);
  nlohmann::json cfg = nlohmann::json::object();
  if (!info.templateJson.empty()) {
    cfg = nlohmann::json::parse(info.templateJson, nullptr, false);
    if (!cfg.is_object())
      cfg = nlohmann::json::object();
  }
  cfg["peft_type"] = "LORA";
  if (!cfg.contains("task_type"))
    cfg["task_type"] = "CAUSAL_LM";
  cfg["r"] = info.r;
  cfg["lora_alpha"] = info.alpha;
  cfg["lora_dropout"] = cfg.value("lora_dropout", 0.0);
  cfg["bias"] = "none";
  cfg["fan_in_fan_out"] = false;
  cfg["inference_mode"] = true;
  cfg["use_rslora"] = false;
  cfg["use_dora"] = false;
  if (!cfg.contains("init_lora_weights"))
    cfg["init_lora_weights"] = true;
  cfg["base_model_name_or_path"] =
      info.baseModel.empty() ? nlohmann::json(nullptr) : nlohmann::json(info.baseModel);
  cfg["target_modules"] = info.targetModules;
  if (!info.targetParameters.empty())
    cfg["target_parameters"] = info.targetParameters;
  // Patterns: keep those of a template (PEFT's own keys); add exact keys for other deviations.
  nlohmann::json rp = cfg.value("rank_pattern", nlohmann::json::object());
  nlohmann::json ap = cfg.value("alpha_pattern", nlohmann::json::object());
  if (!rp.is_object())
    rp = nlohmann::json::object();
  if (!ap.is_object())
    ap = nlohmann::json::object();
  if (info.templateJson.empty())
    for (size_t i = 0; i < set.size(); ++i) {
      const AdapterState& a = set[i];
      if (a.r != info.r)
        rp[patternKey(a)] = a.r;
      if (a.alpha != info.alpha)
        ap[patternKey(a)] = a.alpha;
    }
  cfg["rank_pattern"] = rp;
  cfg["alpha_pattern"] = ap;
  std::ofstream out(dir + "/" + kConfigFile, std::ios::trunc);
  out << cfg.dump(2) << "\n";
  if (!out)
    throw Error("cannot write " + dir + "/" + kConfigFile);
  writeTensors(dir + "/" + kModelFile, set, {{"weight", 0}});
}

std::string loadPeftAdapter(const std::string& dir, AdapterSet& set) {
  const std::string cfgPath = dir + "/" + kConfigFile;
  if (!std::filesystem::exists(cfgPath))
    throw Error(dir + ": not a PEFT adapter (no " + kConfigFile + ")");
  std::string cfgText = readTextFile(cfgPath);
  nlohmann::json cfg = nlohmann::json::parse(cfgText, nullptr, false);
  if (!cfg.is_object())
    throw Error(cfgPath + ": not a JSON object");
  if (cfg.value("peft_type", std::string("LORA")) != "LORA")
    throw Error(cfgPath + ": peft_type is " + cfg["peft_type"].dump() + ", only LORA is supported");
  if (cfg.value("use_dora", false))
    throw Error(cfgPath + ": use_dora is true; DoRA adapters are not supported");
  readTensors(dir + "/" + kModelFile, set, "weight", 0, true);
  return cfgText;
}

void saveOptimizerState(const std::string& path, const AdapterSet& set) {
  writeTensors(path, set, {{"exp_avg", 1}, {"exp_avg_sq", 2}});
}

void loadOptimizerState(const std::string& path, AdapterSet& set) {
  readTensors(path, set, "exp_avg", 1, false);
  readTensors(path, set, "exp_avg_sq", 2, false);
}

} // namespace kt::train
