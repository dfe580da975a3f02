#include "runtime/train/AdapterSet.h"

#include "runtime/exec/LoraWeights.h"
#include "runtime/exec/WeightStore.h"
#include "runtime/support/Error.h"

#include <cmath>
#include <random>

namespace kt::train {

AdapterSet::AdapterSet(const plan::Plan& plan) {
  if (!plan.adapters())
    return;
  for (const plan::Adapter* a : *plan.adapters()) {
    AdapterState s;
    s.name = a->name() ? a->name()->str() : std::string();
    s.expertsFused = a->layout() == plan::AdapterLayout::ExpertsFused;
    s.r = a->r();
    s.alpha = a->alpha();
    s.in = a->in_features();
    s.out = a->out_features();
    s.experts = s.expertsFused ? a->num_experts() : 1;
    s.gateUp = s.expertsFused && a->targets() && a->targets()->size() == 2;
    const size_t na = size_t(s.aRows() * s.in), nb = size_t(int64_t(s.experts) * s.out * s.r);
    for (std::vector<float>* v : {&s.A, &s.dA, &s.mA, &s.vA})
      v->assign(na, 0.f);
    for (std::vector<float>* v : {&s.B, &s.dB, &s.mB, &s.vB})
      v->assign(nb, 0.f);
    adapters_.push_back(std::move(s));
  }
}

const AdapterState* AdapterSet::find(const std::string& name) const {
  for (const AdapterState& a : adapters_)
    if (a.name == name)
      return &a;
  return nullptr;
}

void AdapterSet::initPeft(uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (AdapterState& a : adapters_) {
    // kaiming_uniform_(a=sqrt(5)) on [rows, in]: gain sqrt(2/(1+5)), bound gain·sqrt(3/in).
    const double bound = 1.0 / std::sqrt(double(a.in));
    std::uniform_real_distribution<double> u(-bound, bound);
    for (float& x : a.A)
      x = float(u(rng));
    std::fill(a.B.begin(), a.B.end(), 0.f);
  }
}

int AdapterSet::initFromPlan(const plan::Plan& plan, const WeightStore& weights) {
  int n = 0;
  for (size_t i = 0; i < adapters_.size(); ++i) {
    const plan::Adapter* pa = plan.adapters()->Get(uint32_t(i));
    if (pa->init_a() < 0 && pa->init_b() < 0)
      continue;
    AdapterState& a = adapters_[i];
    // Read as inference reads them (runtime/exec/LoraWeights).
    if (pa->init_a() >= 0) { // copied into place: executors hold pointers to the storage
      std::vector<float> v = adapterTensorF32(weights, pa->init_a(), a.aRows() * a.in,
                                              "adapter " + a.name + ": initial lora_A");
      std::copy(v.begin(), v.end(), a.A.begin());
    }
    if (pa->init_b() >= 0) {
      std::vector<float> b = adapterTensorF32(weights, pa->init_b(), a.out * a.aRows(),
                                              "adapter " + a.name + ": initial lora_B");
      setPeftB(a, a.B, b.data());
    }
    ++n;
  }
  return n;
}

std::vector<float> AdapterSet::peftB(const AdapterState& a,
                                     const std::vector<float>& internal) const {
  const int E = a.experts;
  const int64_t cols = int64_t(E) * a.r;
  std::vector<float> out(internal.size());
  for (int e = 0; e < E; ++e)
    for (int64_t o = 0; o < a.out; ++o)
      for (int j = 0; j < a.r; ++j)
        out[size_t(o * cols + int64_t(j) * E + e)] = internal[size_t((e * a.out + o) * a.r + j)];
  return out;
}

void AdapterSet::setPeftB(AdapterState& a, std::vector<float>& internal, const float* peft) const {
  peftBToExpertMajor(peft, a.experts, a.out, a.r, internal.data());
}

void AdapterSet::zeroGrad() {
  for (AdapterState& a : adapters_) {
    std::fill(a.dA.begin(), a.dA.end(), 0.f);
    std::fill(a.dB.begin(), a.dB.end(), 0.f);
  }
}

double AdapterSet::gradNorm() const {
  double s = 0;
  for (const AdapterState& a : adapters_) {
    for (float g : a.dA)
      s += double(g) * g;
    for (float g : a.dB)
      s += double(g) * g;
  }
  return std::sqrt(s);
}

void AdapterSet::scaleGrad(double f) {
  for (AdapterState& a : adapters_) {
    for (float& g : a.dA)
      g = float(g * f);
    for (float& g : a.dB)
      g = float(g * f);
  }
}

void AdapterSet::adamw(const AdamWConfig& c, double lr, int64_t step) {
  for (AdapterState& a : adapters_) {
    adamwUpdate(a.A.data(), a.dA.data(), a.mA.data(), a.vA.data(), a.A.size(), c, lr, step);
    adamwUpdate(a.B.data(), a.dB.data(), a.mB.data(), a.vB.data(), a.B.size(), c, lr, step);
  }
}

int64_t AdapterSet::numParameters() const {
  int64_t n = 0;
  for (const AdapterState& a : adapters_)
    n += int64_t(a.A.size() + a.B.size());
  return n;
}

} // namespace kt::train
