#include "runtime/exec/LoraWeights.h"

#include "runtime/exec/WeightStore.h"
#include "runtime/support/Error.h"

namespace kt {

namespace {
std::string stepName(const plan::Step& s) {
  return s.name() ? s.name()->str() : std::string("?");
}
bool isTrainStep(const plan::EntryPoint& ep) {
  return ep.name() && ep.name()->str() == "train_step";
}
} // namespace

const plan::AdapterTarget* adapterTargetOf(const LoadedPlan& plan, const plan::Step& s, int slot) {
  if (!s.adapters() || s.adapters()->size() == 0)
    return nullptr;
  const int32_t ai = s.adapters()->Get(uint32_t(slot));
  if (ai < 0)
    return nullptr;
  const int32_t wid = s.weights()->Get(uint32_t(slot));
  const plan::Adapter* a = plan.root().adapters()->Get(uint32_t(ai));
  for (const plan::AdapterTarget* t : *a->targets())
    if (int64_t(t->weight()) == wid)
      return t;
  throw Error(plan.origin() + ": step '" + stepName(s) + "' applies adapter " +
              (a->name() ? a->name()->str() : std::string("?")) + " to weight " +
              std::to_string(wid) + ", which is none of the adapter's targets");
}

void peftBToExpertMajor(const float* peft, int E, int64_t out, int r, float* internal) {
  const int64_t cols = int64_t(E) * r;
  for (int e = 0; e < E; ++e)
    for (int64_t o = 0; o < out; ++o)
      for (int j = 0; j < r; ++j)
        internal[(int64_t(e) * out + o) * r + j] = peft[o * cols + int64_t(j) * E + e];
}

std::vector<float> adapterTensorF32(const WeightStore& weights, int32_t id, int64_t n,
                                    const std::string& what) {
  cpu::MatrixView m = weights.matrix(id);
  if (m.rows * m.cols != n)
    throw Error(what + " (weight " + weights.weight(id).name()->str() + ") has " +
                std::to_string(m.rows * m.cols) + " values, expected " + std::to_string(n));
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t r = 0; r < m.rows; ++r)
    m.rowToF32(r, v.data() + r * m.cols);
  return v;
}

bool LoraWeights::any(const plan::Step& s) {
  if (!s.adapters())
    return false;
  for (int32_t a : *s.adapters())
    if (a >= 0)
      return true;
  return false;
}

bool LoraWeights::neededBy(const LoadedPlan& plan) {
  for (const plan::EntryPoint* ep : *plan.root().entry_points())
    if (!isTrainStep(*ep))
      for (const plan::Step* s : *ep->steps())
        if (any(*s))
          return true;
  return false;
}

LoraWeights::LoraWeights(const LoadedPlan& plan, const WeightStore& weights) {
  const plan::Plan& p = plan.root();
  const uint32_t n = p.adapters() ? p.adapters()->size() : 0;
  values_.resize(n);
  std::vector<bool> read(n, false);
  for (const plan::EntryPoint* ep : *p.entry_points()) {
    if (isTrainStep(*ep))
      continue;
    for (const plan::Step* s : *ep->steps()) {
      if (!any(*s))
        continue;
      for (uint32_t slot = 0; slot < s->adapters()->size(); ++slot) {
        const int32_t ai = s->adapters()->Get(slot);
        if (ai < 0)
          continue;
        const plan::Adapter* a = p.adapters()->Get(uint32_t(ai));
        const std::string name = a->name() ? a->name()->str() : std::string("?");
        const bool fused = a->layout() == plan::AdapterLayout::ExpertsFused;
        const int E = fused ? a->num_experts() : 1, r = a->r();
        Values& v = values_[size_t(ai)];
        if (!read[size_t(ai)]) {
          if (a->init_a() < 0 || a->init_b() < 0)
            throw Error(plan.origin() + ": step '" + stepName(*s) + "' applies adapter " + name +
                        ", which has no values in the plan (compile with kt-compile --adapter "
                        "DIR --adapter-unmerged)");
          const std::string what = plan.origin() + ": adapter " + name;
          v.A = adapterTensorF32(weights, a->init_a(), int64_t(E) * r * a->in_features(),
                                 what + " lora_A");
          std::vector<float> b = adapterTensorF32(
              weights, a->init_b(), int64_t(E) * r * a->out_features(), what + " lora_B");
          v.B.resize(b.size());
          peftBToExpertMajor(b.data(), E, a->out_features(), r, v.B.data());
          read[size_t(ai)] = true;
        }
        const plan::AdapterTarget* t = adapterTargetOf(plan, *s, int(slot));
        std::vector<cpu::grad::Lora>& loras = slots_[{s, int(slot)}];
        for (int e = 0; e < E; ++e) {
          // Rows [row_offset, row_offset + rows) of the adapter's output are this weight's.
          cpu::grad::Lora l;
          l.A = v.A.data() + int64_t(e) * r * a->in_features();
          l.B = v.B.data() + (int64_t(e) * a->out_features() + t->row_offset()) * r;
          l.r = r;
          l.scale = float(a->alpha() / r);
          loras.push_back(l);
        }
      }
    }
  }
}

const cpu::grad::Lora* LoraWeights::get(const plan::Step& s, int slot, int64_t expert) const {
  auto it = slots_.find({&s, slot});
  if (it == slots_.end())
    return nullptr;
  return expert < int64_t(it->second.size()) ? &it->second[size_t(expert)] : nullptr;
}

} // namespace kt
