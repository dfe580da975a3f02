#include "compiler/cost/HardwareProfile.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace kt::cost {

namespace {

using nlohmann::json;

// The formats a missing entry falls back to, in order (see FormatTable).
std::vector<std::string> fallbackChain(WeightFormat f) {
  switch (f) {
  case WeightFormat::F32:
    return {"f32"};
  case WeightFormat::BF16:
    return {"bf16", "f32"};
  case WeightFormat::F16:
    return {"f16", "bf16", "f32"};
  case WeightFormat::Int8:
    return {"int8", "bf16", "f32"};
  case WeightFormat::Int4:
    return {"int4", "int8", "bf16", "f32"};
  }
  return {"f32"};
}

// Thrown inside this file only; parseHardwareProfile turns it into the error string.
struct FieldError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw FieldError(path + ": " + what);
}

std::string shown(const json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names)
    out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Rejects fields the schema does not know (a typo in an optional field would otherwise be
// silently ignored). Keys starting with '_' are comments.
void onlyKnownKeys(const json& obj, const std::string& path,
                   const std::vector<std::string>& known) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string& k = it.key();
    if (!k.empty() && k[0] == '_')
      continue;
    if (std::find(known.begin(), known.end(), k) == known.end())
      fail(path + (path.empty() ? "" : ".") + k,
           "unknown field (expected one of: " + join(known) + ")");
  }
}

const json& object(const json& v, const std::string& path) {
  if (!v.is_object())
    fail(path, "expected an object, got " + shown(v));
  return v;
}

std::string sub(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

const json* find(const json& obj, const std::string& key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

const json& need(const json& obj, const std::string& path, const std::string& key) {
  const json* v = find(obj, key);
  if (!v)
    fail(sub(path, key), "missing (required)");
  return *v;
}

double number(const json& v, const std::string& path, bool allowZero) {
  if (!v.is_number() || (allowZero ? v.get<double>() < 0 : v.get<double>() <= 0))
    fail(path, std::string("expected a ") + (allowZero ? "non-negative" : "positive") +
                   " number, got " + shown(v));
  return v.get<double>();
}

int positiveInt(const json& v, const std::string& path) {
  if (!v.is_number_integer() || v.get<int64_t>() <= 0)
    fail(path, "expected a positive integer, got " + shown(v));
  return int(v.get<int64_t>());
}

std::string string(const json& v, const std::string& path) {
  if (!v.is_string())
    fail(path, "expected a string, got " + shown(v));
  return v.get<std::string>();
}

// A byte count: a number of bytes or a string such as "24GiB".
double bytes(const json& v, const std::string& path) {
  if (v.is_number())
    return number(v, path, /*allowZero=*/true);
  if (v.is_string()) {
    double b = 0;
    std::string why;
    if (!parseByteSize(v.get<std::string>(), &b, &why) || b >= kUnlimitedBytes)
      fail(path, why.empty() ? "expected a finite size, got " + shown(v) : why);
    return b;
  }
  fail(path, "expected a byte count (a number or a string like \"24GiB\"), got " + shown(v));
}

double optNumber(const json& obj, const std::string& path, const std::string& key, double dflt) {
  const json* v = find(obj, key);
  return v ? number(*v, sub(path, key), /*allowZero=*/true) : dflt;
}

// {"f32": x, "bf16": y, ...}; `maxValue` > 0 bounds every value (efficiencies are <= 1).
FormatTable formatTable(const json& v, const std::string& path, double maxValue = 0) {
  object(v, path);
  if (v.empty())
    fail(path, "needs at least one format (f32, bf16, f16, int8, int4)");
  FormatTable t;
  for (auto it = v.begin(); it != v.end(); ++it) {
    WeightFormat f;
    if (!parseWeightFormat(it.key(), &f))
      fail(sub(path, it.key()), "unknown weight format (expected f32, bf16, f16, int8 or int4)");
    double x = number(it.value(), sub(path, it.key()), /*allowZero=*/false);
    if (maxValue > 0 && x > maxValue)
      fail(sub(path, it.key()), "must be at most " + std::to_string(int(maxValue)) +
                                    " (a fraction of the bandwidth), got " + shown(it.value()));
    t.values[it.key()] = x;
  }
  return t;
}

// {"int8": {"8": GFLOP/s, "32": GFLOP/s, ...}, ...}: per format, measured points by row count.
// How a family of named curves ({"NAME": {"COUNT": GFLOP/s, ...}, ...}) reads and what its
// errors say.
struct CurveKind {
  bool (*validName)(const std::string&);
  const char* unknownName; // e.g. "unknown weight format (expected ...)"
  const char* noNames;     // e.g. "needs at least one format (...)"
  const char* count;       // the keys of a curve: "ROWS", "POSITIONS"
  const char* countIs;     // e.g. "a row count (a positive integer)"
};

RowsCurve curves(const json& v, const std::string& path, const CurveKind& k) {
  object(v, path);
  if (v.empty())
    fail(path, k.noNames);
  RowsCurve c;
  for (auto it = v.begin(); it != v.end(); ++it) {
    std::string fp = sub(path, it.key());
    if (!k.validName(it.key()))
      fail(fp, k.unknownName);
    object(it.value(), fp);
    if (it.value().empty())
      fail(fp, std::string("needs at least one point (\"") + k.count + "\": GFLOP/s)");
    auto& points = c.points[it.key()];
    for (auto p = it.value().begin(); p != it.value().end(); ++p) {
      const std::string& key = p.key();
      bool digits =
          !key.empty() && key.size() <= 9 &&
          std::all_of(key.begin(), key.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
      if (!digits || std::stoll(key) <= 0)
        fail(sub(fp, key), std::string("expected ") + k.countIs + " as the key");
      points[std::stoll(key)] = number(p.value(), sub(fp, key), /*allowZero=*/false);
    }
  }
  return c;
}

RowsCurve rowsCurve(const json& v, const std::string& path) {
  static const CurveKind kind{[](const std::string& name) {
                                WeightFormat f;
                                return parseWeightFormat(name, &f);
                              },
                              "unknown weight format (expected f32, bf16, f16, int8 or int4)",
                              "needs at least one format (f32, bf16, f16, int8, int4)", "ROWS",
                              "a row count (a positive integer)"};
  return curves(v, path, kind);
}

// decode_attention_gflops: {"gqa"|"mla": {"POSITIONS": GFLOP/s}}.
RowsCurve attentionCurve(const json& v, const std::string& path) {
  static const CurveKind kind{
      [](const std::string& name) { return name == "gqa" || name == "mla"; },
      "unknown name (expected gqa or mla)", "needs at least one of gqa, mla", "POSITIONS",
      "a number of cached positions (a positive integer)"};
  return curves(v, path, kind);
}

// grouped_moe_host_us: {"grouped_moe_gflops"|"grouped_moe_gflops_i768": {"ROWS": us}}.
RowsCurve groupedHostCurve(const json& v, const std::string& path) {
  static const CurveKind kind{
      [](const std::string& name) {
        return name == "grouped_moe_gflops" || name == "grouped_moe_gflops_i768";
      },
      "unknown curve (expected grouped_moe_gflops or grouped_moe_gflops_i768)",
      "needs at least one of grouped_moe_gflops, grouped_moe_gflops_i768", "ROWS",
      "a row count (a positive integer)"};
  return curves(v, path, kind);
}

// grouped_moe_skew: {"grouped_moe_gflops"|"grouped_moe_gflops_i768": {"uniform": SHARE,
// "skewed": SHARE}}, each share in (0, 1], the skewed one above the uniform one.
void groupedSkew(const json& v, const std::string& path, AcceleratorProfile* a) {
  object(v, path);
  onlyKnownKeys(v, path, {"grouped_moe_gflops", "grouped_moe_gflops_i768"});
  for (const auto& [key, out] :
       {std::make_pair("grouped_moe_gflops", &a->groupedMoeSkew),
        std::make_pair("grouped_moe_gflops_i768", &a->groupedMoeSkewI768)}) {
    const json* c = find(v, key);
    if (!c)
      continue;
    const std::string at = sub(path, key);
    object(*c, at);
    onlyKnownKeys(*c, at, {"uniform", "skewed"});
    out->uniform = number(need(*c, at, "uniform"), sub(at, "uniform"), false);
    out->skewed = number(need(*c, at, "skewed"), sub(at, "skewed"), false);
    if (out->skewed > 1)
      fail(sub(at, "skewed"), "is a share of the routed pairs: at most 1");
    if (out->skewed <= out->uniform)
      fail(sub(at, "skewed"), "must be larger than uniform (the skewed routing's busiest quarter "
                              "takes more of the pairs)");
  }
}

// decode_gemv_gbs / decode_moe_gbs: {"FORMAT": {"BYTES": GB/s}}.
RowsCurve bytesCurve(const json& v, const std::string& path) {
  static const CurveKind kind{[](const std::string& name) {
                                WeightFormat f;
                                return parseWeightFormat(name, &f);
                              },
                              "unknown weight format (expected f32, bf16, f16, int8 or int4)",
                              "needs at least one format (f32, bf16, f16, int8, int4)", "BYTES",
                              "a matrix size in bytes (a positive integer)"};
  return curves(v, path, kind);
}

// decode_kernel_us: {"graph": us, "eager": us}; graph is required when the object is given (the
// decode rates are net of it).
void decodeKernelUs(const json& obj, const std::string& path, AcceleratorProfile* a) {
  const json* k = find(obj, "decode_kernel_us");
  if (!k)
    return;
  std::string p = sub(path, "decode_kernel_us");
  object(*k, p);
  onlyKnownKeys(*k, p, {"graph", "eager"});
  a->decodeGraphKernelUs = number(need(*k, p, "graph"), sub(p, "graph"), /*allowZero=*/false);
  if (const json* e = find(*k, "eager"))
    a->decodeEagerKernelUs = number(*e, sub(p, "eager"), /*allowZero=*/false);
}

int checkId(const json& obj, const std::string& path, size_t index) {
  const json* v = find(obj, "id");
  if (!v)
    return int(index);
  if (!v->is_number_integer() || v->get<int64_t>() != int64_t(index))
    fail(sub(path, "id"),
         "must equal the position in the list (" + std::to_string(index) + "), got " + shown(*v));
  return int(index);
}

NumaNode numaNode(const json& v, const std::string& path, size_t index) {
  object(v, path);
  onlyKnownKeys(v, path, {"id", "cores", "memory_bytes", "bandwidth_gbs"});
  NumaNode n;
  n.id = checkId(v, path, index);
  n.cores = positiveInt(need(v, path, "cores"), sub(path, "cores"));
  n.memoryBytes = bytes(need(v, path, "memory_bytes"), sub(path, "memory_bytes"));
  n.bandwidthGBs = number(need(v, path, "bandwidth_gbs"), sub(path, "bandwidth_gbs"), false);
  return n;
}

// {"gqa": GFLOP/s, "mla": GFLOP/s}, both optional, under `key` of `obj` (absent: untouched).
void attentionRates(const json& obj, const std::string& path, const std::string& key, double* gqa,
                    double* mla) {
  const json* a = find(obj, key);
  if (!a)
    return;
  std::string p = sub(path, key);
  object(*a, p);
  onlyKnownKeys(*a, p, {"gqa", "mla"});
  if (const json* x = find(*a, "gqa"))
    *gqa = number(*x, sub(p, "gqa"), /*allowZero=*/false);
  if (const json* x = find(*a, "mla"))
    *mla = number(*x, sub(p, "mla"), /*allowZero=*/false);
}

CpuProfile cpu(const json& v, const std::string& path) {
  object(v, path);
  onlyKnownKeys(v, path,
                {"model", "isa", "numa_nodes", "caches", "gemv_efficiency", "gemm_gflops",
                 "attention_gflops", "plain_gflops", "plain_gemv_efficiency", "gemm_rows_gflops",
                 "plain_rows_gflops", "expert_rows_gflops", "expert_rows_gflops_i768",
                 "prefill_attention_gflops", "decode_attention_gflops", "reserved_bytes",
                 "op_overhead_us", "pool_wake_us"});
  CpuProfile c;
  if (const json* m = find(v, "model"))
    c.model = string(*m, sub(path, "model"));

  const json& isa = need(v, path, "isa");
  if (!isa.is_array() || isa.empty())
    fail(sub(path, "isa"), "expected a non-empty list of ISA names, got " + shown(isa));
  for (size_t i = 0; i < isa.size(); ++i) {
    std::string p = sub(path, "isa") + "[" + std::to_string(i) + "]";
    std::string name = string(isa[i], p);
    const auto& known = knownIsas();
    if (std::find(known.begin(), known.end(), name) == known.end())
      fail(p, "unknown ISA '" + name + "' (expected one of: " + join(known) + ")");
    c.isa.push_back(name);
  }

  const json& nodes = need(v, path, "numa_nodes");
  if (!nodes.is_array() || nodes.empty())
    fail(sub(path, "numa_nodes"), "expected a non-empty list of NUMA nodes, got " + shown(nodes));
  for (size_t i = 0; i < nodes.size(); ++i)
    c.numaNodes.push_back(
        numaNode(nodes[i], sub(path, "numa_nodes") + "[" + std::to_string(i) + "]", i));

  if (const json* caches = find(v, "caches")) {
    std::string p = sub(path, "caches");
    object(*caches, p);
    onlyKnownKeys(*caches, p, {"l1d_per_core_bytes", "l2_per_core_bytes", "l3_per_node_bytes"});
    if (const json* x = find(*caches, "l1d_per_core_bytes"))
      c.caches.l1dPerCore = bytes(*x, sub(p, "l1d_per_core_bytes"));
    if (const json* x = find(*caches, "l2_per_core_bytes"))
      c.caches.l2PerCore = bytes(*x, sub(p, "l2_per_core_bytes"));
    if (const json* x = find(*caches, "l3_per_node_bytes"))
      c.caches.l3PerNode = bytes(*x, sub(p, "l3_per_node_bytes"));
  }

  c.gemvEfficiency =
      formatTable(need(v, path, "gemv_efficiency"), sub(path, "gemv_efficiency"), 1.0);

  std::string gp = sub(path, "gemm_gflops");
  const json& gemm = object(need(v, path, "gemm_gflops"), gp);
  bool hasF32 = false;
  for (auto it = gemm.begin(); it != gemm.end(); ++it) {
    if (std::find(c.isa.begin(), c.isa.end(), it.key()) == c.isa.end())
      fail(sub(gp, it.key()), "ISA '" + it.key() + "' is not listed in " + sub(path, "isa"));
    c.gemmGflops[it.key()] = formatTable(it.value(), sub(gp, it.key()));
    hasF32 = hasF32 || c.gemmGflops[it.key()].values.count("f32");
  }
  if (!hasF32)
    fail(gp, "needs an f32 entry for at least one ISA (every format can fall back to f32)");

  if (const json* pg = find(v, "plain_gflops"))
    c.plainGflops = formatTable(*pg, sub(path, "plain_gflops"));
  if (const json* pe = find(v, "plain_gemv_efficiency"))
    c.plainGemvEfficiency = formatTable(*pe, sub(path, "plain_gemv_efficiency"), 1.0);
  if (const json* r = find(v, "gemm_rows_gflops"))
    c.gemmRowsGflops = rowsCurve(*r, sub(path, "gemm_rows_gflops"));
  if (const json* r = find(v, "plain_rows_gflops"))
    c.plainRowsGflops = rowsCurve(*r, sub(path, "plain_rows_gflops"));
  if (const json* r = find(v, "expert_rows_gflops"))
    c.expertRowsGflops = rowsCurve(*r, sub(path, "expert_rows_gflops"));
  if (const json* r = find(v, "expert_rows_gflops_i768"))
    c.expertRowsGflopsI768 = rowsCurve(*r, sub(path, "expert_rows_gflops_i768"));
  attentionRates(v, path, "attention_gflops", &c.gqaAttentionGflops, &c.mlaAttentionGflops);
  if (const json* d = find(v, "prefill_attention_gflops"))
    c.prefillAttentionGflops = attentionCurve(*d, sub(path, "prefill_attention_gflops"));
  if (const json* d = find(v, "decode_attention_gflops"))
    c.decodeAttentionGflops = attentionCurve(*d, sub(path, "decode_attention_gflops"));
  if (const json* r = find(v, "reserved_bytes"))
    c.reservedBytes = bytes(*r, sub(path, "reserved_bytes"));
  c.opOverheadUs = optNumber(v, path, "op_overhead_us", 0);
  c.poolWakeUs = optNumber(v, path, "pool_wake_us", 0);
  return c;
}

HostLink link(const json& v, const std::string& path) {
  object(v, path);
  onlyKnownKeys(v, path, {"h2d_gbs", "d2h_gbs", "latency_us", "move_h2d_gbs", "move_d2h_gbs"});
  HostLink l;
  l.h2dGBs = number(need(v, path, "h2d_gbs"), sub(path, "h2d_gbs"), false);
  l.d2hGBs = number(need(v, path, "d2h_gbs"), sub(path, "d2h_gbs"), false);
  l.latencyUs = optNumber(v, path, "latency_us", 0);
  if (const json* m = find(v, "move_h2d_gbs"))
    l.moveH2dGBs = number(*m, sub(path, "move_h2d_gbs"), false);
  if (const json* m = find(v, "move_d2h_gbs"))
    l.moveD2hGBs = number(*m, sub(path, "move_d2h_gbs"), false);
  return l;
}

AcceleratorProfile accelerator(const json& v, const std::string& path, size_t index, bool npu) {
  object(v, path);
  std::vector<std::string> keys = {"id",
                                   "name",
                                   "memory_bytes",
                                   "reserved_bytes",
                                   "bandwidth_gbs",
                                   "gemv_efficiency",
                                   "gemm_tflops",
                                   "link",
                                   "launch_overhead_us",
                                   "launch_issue_us",
                                   "kernel_floor_us",
                                   "sm_count",
                                   "attention_gflops",
                                   "attention_block_gflops",
                                   "decode_attention_gflops",
                                   "prefill_attention_gflops",
                                   "decode_kernel_us",
                                   "decode_gemv_gbs",
                                   "decode_moe_gbs",
                                   "grouped_gemm_gflops",
                                   "grouped_moe_gflops",
                                   "grouped_moe_gflops_i768",
                                   "grouped_moe_host_us",
                                   "grouped_moe_skewed_gflops",
                                   "grouped_moe_skewed_gflops_i768",
                                   "grouped_moe_skew"};
  if (npu)
    keys.push_back("supported_ops");
  onlyKnownKeys(v, path, keys);
  AcceleratorProfile a;
  a.id = checkId(v, path, index);
  if (const json* n = find(v, "name"))
    a.name = string(*n, sub(path, "name"));
  a.memoryBytes = bytes(need(v, path, "memory_bytes"), sub(path, "memory_bytes"));
  if (const json* r = find(v, "reserved_bytes"))
    a.reservedBytes = bytes(*r, sub(path, "reserved_bytes"));
  if (a.reservedBytes > a.memoryBytes)
    fail(sub(path, "reserved_bytes"), "is larger than memory_bytes");
  a.bandwidthGBs = number(need(v, path, "bandwidth_gbs"), sub(path, "bandwidth_gbs"), false);
  if (const json* e = find(v, "gemv_efficiency"))
    a.gemvEfficiency = formatTable(*e, sub(path, "gemv_efficiency"), 1.0);
  else
    a.gemvEfficiency.values["f32"] = 0.8;
  a.gemmTflops = formatTable(need(v, path, "gemm_tflops"), sub(path, "gemm_tflops"));
  a.link = link(need(v, path, "link"), sub(path, "link"));
  a.launchOverheadUs = optNumber(v, path, "launch_overhead_us", 0);
  a.launchIssueUs = optNumber(v, path, "launch_issue_us", 0);
  a.kernelFloorUs = optNumber(v, path, "kernel_floor_us", 0);
  const double sms = optNumber(v, path, "sm_count", 0);
  if (sms != std::floor(sms) || sms > 100000)
    fail(sub(path, "sm_count"), "must be a whole number of streaming multiprocessors");
  a.smCount = int(sms);
  attentionRates(v, path, "attention_gflops", &a.gqaAttentionGflops, &a.mlaAttentionGflops);
  attentionRates(v, path, "attention_block_gflops", &a.gqaAttentionBlockGflops,
                 &a.mlaAttentionBlockGflops);
  if (const json* d = find(v, "decode_attention_gflops"))
    a.decodeAttentionGflops = attentionCurve(*d, sub(path, "decode_attention_gflops"));
  if (const json* d = find(v, "prefill_attention_gflops"))
    a.prefillAttentionGflops = attentionCurve(*d, sub(path, "prefill_attention_gflops"));
  decodeKernelUs(v, path, &a);
  if (const json* d = find(v, "decode_gemv_gbs"))
    a.decodeGemvGBs = bytesCurve(*d, sub(path, "decode_gemv_gbs"));
  if (const json* d = find(v, "decode_moe_gbs"))
    a.decodeMoeGBs = bytesCurve(*d, sub(path, "decode_moe_gbs"));
  if (const json* d = find(v, "grouped_gemm_gflops"))
    a.groupedGemmGflops = rowsCurve(*d, sub(path, "grouped_gemm_gflops"));
  if (const json* d = find(v, "grouped_moe_gflops"))
    a.groupedMoeGflops = rowsCurve(*d, sub(path, "grouped_moe_gflops"));
  if (const json* d = find(v, "grouped_moe_gflops_i768"))
    a.groupedMoeGflopsI768 = rowsCurve(*d, sub(path, "grouped_moe_gflops_i768"));
  if (const json* d = find(v, "grouped_moe_host_us"))
    a.groupedMoeHostUs = groupedHostCurve(*d, sub(path, "grouped_moe_host_us"));
  if (const json* d = find(v, "grouped_moe_skewed_gflops"))
    a.groupedMoeSkewedGflops = rowsCurve(*d, sub(path, "grouped_moe_skewed_gflops"));
  if (const json* d = find(v, "grouped_moe_skewed_gflops_i768"))
    a.groupedMoeSkewedGflopsI768 = rowsCurve(*d, sub(path, "grouped_moe_skewed_gflops_i768"));
  if (const json* d = find(v, "grouped_moe_skew"))
    groupedSkew(*d, sub(path, "grouped_moe_skew"), &a);
  if ((!a.groupedMoeSkewedGflops.empty() || !a.groupedMoeSkewedGflopsI768.empty()) &&
      a.groupedMoeSkew.skewed <= 0 && a.groupedMoeSkewI768.skewed <= 0)
    fail(sub(path, "grouped_moe_skew"),
         "missing: the skewed curves are priced by their routing's share, so they need it");
  if (a.decodeGraphKernelUs <= 0 && (!a.decodeGemvGBs.empty() || !a.decodeMoeGBs.empty()))
    fail(sub(path, "decode_kernel_us"),
         "missing: decode_gemv_gbs and decode_moe_gbs are rates beyond its per-kernel cost, so "
         "they need decode_kernel_us.graph");
  if (npu) {
    std::string p = sub(path, "supported_ops");
    const json& ops = need(v, path, "supported_ops");
    if (!ops.is_array() || ops.empty())
      fail(p, "expected a non-empty list of op kinds, got " + shown(ops));
    for (size_t i = 0; i < ops.size(); ++i) {
      std::string pi = p + "[" + std::to_string(i) + "]";
      std::string kind = string(ops[i], pi);
      const auto& known = knownOpKinds();
      if (std::find(known.begin(), known.end(), kind) == known.end())
        fail(pi, "unknown op kind '" + kind + "' (expected one of: " + join(known) + ")");
      a.supportedOps.push_back(kind);
    }
  }
  return a;
}

HardwareProfile profile(const json& v) {
  object(v, "(top level)");
  onlyKnownKeys(v, "", {"name", "description", "source", "cpu", "gpus", "npus"});
  HardwareProfile p;
  p.name = string(need(v, "", "name"), "name");
  if (const json* d = find(v, "description"))
    p.description = string(*d, "description");
  if (const json* s = find(v, "source")) {
    p.source = string(*s, "source");
    if (p.source != "measured" && p.source != "datasheet" && p.source != "placeholder")
      fail("source", "expected \"measured\", \"datasheet\" or \"placeholder\", got " + shown(*s));
  }
  p.cpu = cpu(need(v, "", "cpu"), "cpu");
  for (const char* kind : {"gpus", "npus"}) {
    const json* list = find(v, kind);
    if (!list)
      continue;
    if (!list->is_array())
      fail(kind, "expected a list, got " + shown(*list));
    for (size_t i = 0; i < list->size(); ++i) {
      std::string path = std::string(kind) + "[" + std::to_string(i) + "]";
      bool npu = std::string(kind) == "npus";
      (npu ? p.npus : p.gpus).push_back(accelerator((*list)[i], path, i, npu));
    }
  }
  return p;
}

} // namespace

double FormatTable::get(WeightFormat f) const {
  for (const std::string& name : fallbackChain(f)) {
    auto it = values.find(name);
    if (it != values.end())
      return it->second;
  }
  // Nothing on the chain (e.g. an NPU with only int8 asked for f32): the smallest number given is
  // the conservative guess.
  double best = 0;
  for (const auto& kv : values)
    best = best == 0 ? kv.second : std::min(best, kv.second);
  return best;
}

double RowsCurve::atKey(const std::string& key, double rows) const {
  auto it = points.find(key);
  if (it == points.end() || it->second.empty())
    return 0;
  const std::map<int64_t, double>& p = it->second;
  const auto first = p.begin();
  if (rows <= double(first->first))
    return first->second;
  auto hi = p.lower_bound(int64_t(std::ceil(rows)));
  if (hi == p.end())
    return std::prev(p.end())->second;
  auto lo = std::prev(hi);
  if (double(hi->first) <= rows || lo == hi)
    return hi->second;
  double x = (std::log2(rows) - std::log2(double(lo->first))) /
             (std::log2(double(hi->first)) - std::log2(double(lo->first)));
  return lo->second + x * (hi->second - lo->second);
}

double RowsCurve::at(WeightFormat f, double rows) const {
  for (const std::string& name : fallbackChain(f))
    if (double r = atKey(name, rows); r > 0)
      return r;
  return 0;
}

namespace {
// The values `l` and `s` of the probe's two expert shapes (hidden 2048: DeepSeek-V2-Lite's
// intermediate 1408 and Qwen3-30B-A3B's 768) for an expert of `weights` matrix elements: linear
// in log(weights) between them, held flat outside; the one given when only one is; 0 without
// either.
double blendBySize(double l, double s, double weights) {
  constexpr double kLarge = 3.0 * 2048 * 1408, kSmall = 3.0 * 2048 * 768;
  if (l <= 0 || s <= 0)
    return l > 0 ? l : s;
  const double w = std::clamp(std::log(weights / kSmall) / std::log(kLarge / kSmall), 0.0, 1.0);
  return s + w * (l - s);
}

// The same for a pair of the probe's curves at `rows`.
double bySize(const RowsCurve& large, const RowsCurve& small, WeightFormat f, double weights,
              double rows) {
  return blendBySize(large.at(f, rows), small.at(f, rows), weights);
}
} // namespace

double CpuProfile::expertPathGflops(WeightFormat f, double weights, double rows) const {
  // The probe's two expert shapes (runtime/probe/ExpertProbe.cpp).
  return bySize(expertRowsGflops, expertRowsGflopsI768, f, weights, rows);
}

double AcceleratorProfile::groupedMoeGflopsAt(WeightFormat f, double weights, double rows) const {
  // The probe's two layers (runtime/probe/GpuProbe.cu, measureGroupedMoe).
  return bySize(groupedMoeGflops, groupedMoeGflopsI768, f, weights, rows);
}

double AcceleratorProfile::groupedMoeSkewedGflopsAt(WeightFormat f, double weights,
                                                    double rows) const {
  return bySize(groupedMoeSkewedGflops, groupedMoeSkewedGflopsI768, f, weights, rows);
}

AcceleratorProfile::RoutingShares AcceleratorProfile::groupedMoeSharesAt(double weights) const {
  RoutingShares s;
  s.uniform = blendBySize(groupedMoeSkew.uniform, groupedMoeSkewI768.uniform, weights);
  s.skewed = blendBySize(groupedMoeSkew.skewed, groupedMoeSkewI768.skewed, weights);
  return s;
}

double AcceleratorProfile::groupedMoeHostSecondsAt(double weights, double rows) const {
  return 1e-6 * blendBySize(groupedMoeHostUs.atKey("grouped_moe_gflops", rows),
                            groupedMoeHostUs.atKey("grouped_moe_gflops_i768", rows), weights);
}

double CpuProfile::bestGemmGflops(WeightFormat f) const {
  // An ISA without an entry for a format cannot run it (AMX has no f32), so look for exact
  // entries along the fallback chain rather than using each table's own fallback.
  for (const std::string& name : fallbackChain(f)) {
    double best = 0;
    for (const auto& kv : gemmGflops) {
      auto it = kv.second.values.find(name);
      if (it != kv.second.values.end())
        best = std::max(best, it->second);
    }
    if (best > 0)
      return best;
  }
  return 0; // unreachable for a parsed profile (f32 is required)
}

const std::vector<std::string>& knownOpKinds() {
  static const std::vector<std::string> kinds = {
      "embedding", "attention", "mla_attention", "mlp", "shared_experts", "routed_experts",
      "lm_head",   "linear",    "rms_norm",      "add", "rope",           "swiglu"};
  return kinds;
}

const std::vector<std::string>& knownIsas() {
  static const std::vector<std::string> isas = {"scalar",      "avx2",        "avx512",
                                                "avx512_bf16", "avx512_vnni", "amx"};
  return isas;
}

bool parseHardwareProfile(const std::string& jsonText, const std::string& origin,
                          HardwareProfile* out, std::string* error) {
  try {
    json doc = json::parse(jsonText);
    *out = profile(doc);
    return true;
  } catch (const FieldError& e) {
    *error = origin + ": " + e.what();
  } catch (const json::parse_error& e) {
    // nlohmann's message carries the line and column.
    *error = origin + ": not valid JSON: " + e.what();
  } catch (const std::exception& e) {
    *error = origin + ": " + e.what();
  }
  return false;
}

bool loadHardwareProfile(const std::string& path, HardwareProfile* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot open the hardware profile";
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parseHardwareProfile(ss.str(), path, out, error);
}

} // namespace kt::cost
