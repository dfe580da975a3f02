#include "compiler/cost/Units.h"

#include "runtime/support/Text.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace kt::cost {

bool parseByteSize(const std::string& text, double* bytes, std::string* why) {
  std::string t = asciiLower(trimBlanks(text));
  if (t == "unlimited" || t == "inf") {
    *bytes = kUnlimitedBytes;
    return true;
  }
  // strtod would accept "nan", "inf" and hex; insist on digits and one optional dot.
  size_t i = 0;
  bool digits = false, dot = false;
  for (; i < t.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(t[i])))
      digits = true;
    else if (t[i] == '.' && !dot)
      dot = true;
    else
      break;
  }
  if (!digits) {
    if (why)
      *why = "expected a size such as 12GiB, 512MiB, 4096 or 'unlimited', got '" + text + "'";
    return false;
  }
  double value = std::strtod(t.substr(0, i).c_str(), nullptr);
  std::string unit = trimBlanks(t.substr(i));
  struct Unit {
    const char* name;
    double scale;
  };
  static const Unit kUnits[] = {{"", 1},
                                {"b", 1},
                                {"k", 1024.0},
                                {"kib", 1024.0},
                                {"kb", 1e3},
                                {"m", 1048576.0},
                                {"mib", 1048576.0},
                                {"mb", 1e6},
                                {"g", 1073741824.0},
                                {"gib", 1073741824.0},
                                {"gb", 1e9},
                                {"t", 1099511627776.0},
                                {"tib", 1099511627776.0},
                                {"tb", 1e12}};
  for (const Unit& u : kUnits) {
    if (unit == u.name) {
      *bytes = std::floor(value * u.scale);
      return true;
    }
  }
  if (why)
    *why = "unknown unit '" + unit + "' in '" + text +
           "' (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)";
  return false;
}

std::string formatBytes(double bytes) {
  if (bytes >= kUnlimitedBytes / 2)
    return "unlimited";
  static const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  double v = bytes;
  while (std::fabs(v) >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%.0f B", v);
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kNames[u]);
  return buf;
}

std::string formatSeconds(double s) {
  char buf[32];
  if (s < 1e-3)
    std::snprintf(buf, sizeof buf, "%.1f us", s * 1e6);
  else if (s < 1.0)
    std::snprintf(buf, sizeof buf, "%.2f ms", s * 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

const char* formatName(WeightFormat f) {
  switch (f) {
  case WeightFormat::F32:
    return "f32";
  case WeightFormat::BF16:
    return "bf16";
  case WeightFormat::F16:
    return "f16";
  case WeightFormat::Int8:
    return "int8";
  case WeightFormat::Int4:
    return "int4";
  }
  return "?";
}

bool parseWeightFormat(const std::string& name, WeightFormat* f) {
  static const WeightFormat kAll[] = {WeightFormat::F32, WeightFormat::BF16, WeightFormat::F16,
                                      WeightFormat::Int8, WeightFormat::Int4};
  for (WeightFormat w : kAll) {
    if (name == formatName(w)) {
      *f = w;
      return true;
    }
  }
  return false;
}

bool parseCpuQuant(const std::string& scheme, QuantSpec* out) {
  if (scheme == "f32" || scheme == "bf16" || scheme == "int8") {
    *out = {};
    return parseWeightFormat(scheme, &out->format);
  }
  static const struct {
    const char* name;
    int64_t group;
    bool symmetric;
  } kInt4[] = {{"int4", 32, true},
               {"int4:g32", 32, true},
               {"int4:g128", 128, true},
               {"int4:g32:asym", 32, false},
               {"int4:g128:asym", 128, false}};
  for (const auto& k : kInt4)
    if (scheme == k.name) {
      *out = {WeightFormat::Int4, k.group, k.symmetric};
      return true;
    }
  return false;
}

QuantSpec effectiveCpuQuant(const QuantSpec& q, int64_t cols) {
  QuantSpec e = q;
  if (e.format == WeightFormat::Int4 && e.group > 0 && cols % e.group)
    e.group = 32;
  if (e.format == WeightFormat::Int4 && cols % e.group)
    e = {WeightFormat::Int8, 0, true};
  return e;
}

double plainBytes(int64_t elements, WeightFormat f) {
  switch (f) {
  case WeightFormat::F32:
    return 4.0 * double(elements);
  case WeightFormat::BF16:
  case WeightFormat::F16:
    return 2.0 * double(elements);
  case WeightFormat::Int8:
    return double(elements);
  case WeightFormat::Int4:
    return 0.5 * double(elements);
  }
  return 4.0 * double(elements);
}

double matrixBytes(int64_t rows, int64_t cols, const QuantSpec& q) {
  double n = double(rows) * double(cols);
  switch (q.format) {
  case WeightFormat::Int8:
    return n + 4.0 * double(rows);
  case WeightFormat::Int4: {
    int64_t group = q.group > 0 ? q.group : 128;
    double groups = double(rows) * std::ceil(double(cols) / double(group));
    return 0.5 * n + groups * (q.symmetric ? 2.0 : 4.0);
  }
  default:
    return plainBytes(rows * cols, q.format);
  }
}

bool parseGpuDtype(const std::string& name, GpuDtype* out) {
  if (name.empty())
    *out = GpuDtype::AsStored;
  else if (name == "f32")
    *out = GpuDtype::F32;
  else if (name == "bf16")
    *out = GpuDtype::BF16;
  else if (name == "f32+int8")
    *out = GpuDtype::F32Int8;
  else if (name == "bf16+int8")
    *out = GpuDtype::BF16Int8;
  else
    return false;
  return true;
}

WeightFormat gpuFormat(GpuDtype d, int rank, bool forceF32, WeightFormat stored, bool gemmOnly) {
  if (d == GpuDtype::AsStored)
    return stored;
  const bool int8 = d == GpuDtype::F32Int8 || d == GpuDtype::BF16Int8;
  if (int8 && gemmOnly && rank >= 2 && !forceF32)
    return WeightFormat::Int8;
  const bool bf16 = d == GpuDtype::BF16 || d == GpuDtype::BF16Int8;
  return bf16 && rank >= 2 && !forceF32 ? WeightFormat::BF16 : WeightFormat::F32;
}

} // namespace kt::cost
