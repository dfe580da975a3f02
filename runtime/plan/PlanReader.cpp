#include "runtime/plan/PlanReader.h"

#include "runtime/plan/OpSignature.h"
#include "runtime/support/Crc32.h"
#include "runtime/support/DType.h"
#include "runtime/support/Error.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

namespace kt {
namespace {

using namespace kt::plan;

// Walks the verified plan and throws on the first reference that points nowhere.
class PlanValidator {
public:
  PlanValidator(const Plan& p, const std::string& origin) : p_(p), origin_(origin) {}

  void run() {
    if (p_.version() != kPlanVersion)
      fail("plan format version " + std::to_string(p_.version()) + ", this kt-rt reads version " +
           std::to_string(kPlanVersion) + " (recompile the model with this release's kt-compile)");
    const ModelInfo* m = p_.model();
    if (!m)
      fail("missing model metadata");
    if (m->vocab_size() <= 0 || m->hidden_size() <= 0 || m->num_layers() < 0)
      fail("model metadata has non-positive vocab_size/hidden_size");
    numDevices_ = p_.devices() ? p_.devices()->size() : 0;
    if (numDevices_ == 0)
      fail("plan lists no devices");
    for (uint32_t i = 0; i < numDevices_; ++i) {
      auto k = uint32_t(p_.devices()->Get(i)->kind());
      if (k > uint32_t(DeviceKind::MAX))
        fail("device " + std::to_string(i) + " has unknown kind " + std::to_string(k));
    }
    numFiles_ = p_.weight_files() ? p_.weight_files()->size() : 0;
    for (uint32_t i = 0; i < numFiles_; ++i)
      if (!p_.weight_files()->Get(i)->path())
        fail("weight file " + std::to_string(i) + " has no path");
    checkWeights();
    checkBuffers();
    checkKvLayers();
    checkAdapters();
    if (!p_.entry_points() || p_.entry_points()->size() == 0)
      fail("plan has no entry points");
    for (uint32_t i = 0; i < p_.entry_points()->size(); ++i)
      checkEntryPoint(*p_.entry_points()->Get(i), i);
  }

private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(origin_ + ": invalid plan: " + why);
  }

  static std::string nameOr(const flatbuffers::String* s, const std::string& fallback) {
    return s ? s->str() : fallback;
  }

  void checkDType(plan::DType t, const std::string& what) {
    if (uint32_t(t) > uint32_t(plan::DType::MAX))
      fail(what + " has unknown dtype " + std::to_string(uint32_t(t)));
  }

  void checkWeights() {
    numWeights_ = p_.weights() ? p_.weights()->size() : 0;
    for (uint32_t i = 0; i < numWeights_; ++i) {
      const Weight* w = p_.weights()->Get(i);
      std::string what = "weight " + std::to_string(i) + " '" + nameOr(w->name(), "?") + "'";
      checkDType(w->dtype(), what);
      if (!w->shape() || w->shape()->size() == 0)
        fail(what + " has no shape");
      uint64_t numel = 1;
      for (int64_t d : *w->shape()) {
        if (d <= 0 || d > (int64_t(1) << 40))
          fail(what + " has invalid dimension " + std::to_string(d));
        if (numel > (uint64_t(1) << 48) / uint64_t(d))
          fail(what + " is implausibly large");
        numel *= uint64_t(d);
      }
      if (w->device() >= numDevices_)
        fail(what + " is placed on device " + std::to_string(w->device()) + " of " +
             std::to_string(numDevices_));
      if (!w->segments() || w->segments()->size() == 0)
        fail(what + " has no storage segments");
      uint32_t layout = uint32_t(w->layout());
      if (layout > uint32_t(Layout::MAX))
        fail(what + " has unknown layout " + std::to_string(layout));
      uint64_t expectTotal = numel * dtypeSize(kt::DType(w->dtype()));
      const bool packed = w->layout() == Layout::Packed;
      if (packed && uint32_t(w->packed_format()) > uint32_t(PackedFormat::MAX))
        fail(what + " has unknown packed format " + std::to_string(uint32_t(w->packed_format())));
      if (packed && (w->shape()->size() < 2 || w->shape()->size() > 3))
        fail(what + " is packed but is not a matrix or a stack of matrices");
      // Packed blobs are sized by the kernels' layout; WeightStore checks them against it.
      bool quantized = packed || (w->quant() && w->quant()->scheme() != QuantScheme::None);
      bool perSlice = w->layout() == Layout::Stacked || (packed && w->shape()->size() == 3);
      if (packed && !perSlice && w->segments()->size() != 1)
        fail(what + " is packed but has several segments");
      if (perSlice && w->segments()->size() != uint32_t(w->shape()->Get(0)))
        fail(what + " is stacked over " + std::to_string(w->shape()->Get(0)) + " slices but has " +
             std::to_string(w->segments()->size()) + " segments");
      uint64_t total = 0;
      for (uint32_t s = 0; s < w->segments()->size(); ++s) {
        const Segment* seg = w->segments()->Get(s);
        if (seg->file() >= numFiles_)
          fail(what + " segment " + std::to_string(s) + " refers to weight file " +
               std::to_string(seg->file()) + " of " + std::to_string(numFiles_));
        if (seg->offset() > (uint64_t(1) << 50) || seg->size() > (uint64_t(1) << 50))
          fail(what + " segment " + std::to_string(s) + " has an implausible range");
        total += seg->size();
      }
      if (!quantized && total != expectTotal)
        fail(what + ": shape and dtype need " + std::to_string(expectTotal) +
             " bytes but its segments hold " + std::to_string(total));
      if (w->source() && w->source()->size() > 0)
        checkSource(*w, what, expectTotal);
    }
  }

  // Weight.source (packed weights): the checkpoint ranges `kt-rt pack` rebuilds the blobs from.
  // One segment per matrix or one for the whole stack, inside the recorded file sizes, covering
  // exactly the shape's bytes in the source dtype.
  void checkSource(const Weight& w, const std::string& what, uint64_t expectTotal) {
    if (w.layout() != Layout::Packed)
      fail(what + " has source segments but is not packed");
    const uint32_t count = w.source()->size();
    const uint32_t slices = w.shape()->size() == 3 ? uint32_t(w.shape()->Get(0)) : 1;
    if (count != 1 && count != slices)
      fail(what + " has " + std::to_string(count) + " source segments for " +
           std::to_string(slices) + " matrices (need 1 or one per matrix)");
    uint64_t total = 0;
    for (uint32_t s = 0; s < count; ++s) {
      const Segment* seg = w.source()->Get(s);
      std::string where = what + " source segment " + std::to_string(s);
      if (seg->file() >= numFiles_)
        fail(where + " refers to weight file " + std::to_string(seg->file()) + " of " +
             std::to_string(numFiles_));
      for (const Segment* packed : *w.segments())
        if (packed->file() == seg->file())
          fail(where + " is in the weight's own sidecar (file " + std::to_string(seg->file()) +
               ")");
      const uint64_t fileSize = p_.weight_files()->Get(seg->file())->size();
      if (seg->offset() > fileSize || seg->size() > fileSize - seg->offset())
        fail(where + " (" + std::to_string(seg->offset()) + "+" + std::to_string(seg->size()) +
             ") lies outside the " + std::to_string(fileSize) + " bytes of weight file " +
             std::to_string(seg->file()));
      total += seg->size();
    }
    if (total != expectTotal)
      fail(what + ": shape and source dtype need " + std::to_string(expectTotal) +
           " bytes but its source segments hold " + std::to_string(total));
  }

  void checkBuffers() {
    numBuffers_ = p_.buffers() ? p_.buffers()->size() : 0;
    for (uint32_t i = 0; i < numBuffers_; ++i) {
      const Buffer* b = p_.buffers()->Get(i);
      std::string what = "buffer " + std::to_string(i) + " '" + nameOr(b->name(), "?") + "'";
      checkDType(b->dtype(), what);
      if (!b->shape() || b->shape()->size() == 0)
        fail(what + " has no shape");
      int dynamic = 0;
      for (int64_t d : *b->shape()) {
        if (d == -1)
          ++dynamic;
        else if (d <= 0 || d > (int64_t(1) << 32))
          fail(what + " has invalid dimension " + std::to_string(d));
      }
      if (dynamic > 1)
        fail(what + " has more than one token dimension");
      if (b->device() >= numDevices_)
        fail(what + " is placed on device " + std::to_string(b->device()));
    }
  }

  void checkKvLayers() {
    if (!p_.kv_layers())
      return;
    for (uint32_t i = 0; i < p_.kv_layers()->size(); ++i) {
      const KvLayer* kv = p_.kv_layers()->Get(i);
      std::string what = "kv layer " + std::to_string(i);
      if (kv->layer() < 0 || kv->layer() >= p_.model()->num_layers())
        fail(what + " names layer " + std::to_string(kv->layer()));
      if (kv->k_dim() <= 0 || kv->v_dim() <= 0 || kv->k_dim() > 65536 || kv->v_dim() > 65536 ||
          (kv->kind() == KvKind::Gqa && (kv->num_kv_heads() <= 0 || kv->num_kv_heads() > 4096)))
        fail(what + " has invalid dimensions");
      if (uint32_t(kv->kind()) > uint32_t(KvKind::MAX))
        fail(what + " has unknown kind");
      if (kv->device() >= numDevices_)
        fail(what + " is placed on device " + std::to_string(kv->device()));
    }
  }

  static int64_t numel(const Weight& w) {
    int64_t n = 1;
    for (int64_t d : *w.shape())
      n *= d;
    return n;
  }

  // LoRA adapters (Plan.adapters): sizes the runtime allocates and the frozen rows each one
  // updates.
  void checkAdapters() {
    numAdapters_ = p_.adapters() ? p_.adapters()->size() : 0;
    for (uint32_t i = 0; i < numAdapters_; ++i) {
      const Adapter* a = p_.adapters()->Get(i);
      const std::string what = "adapter " + std::to_string(i) + " (" + nameOr(a->name(), "?") + ")";
      if (!a->name() || a->name()->size() == 0)
        fail(what + " has no name");
      if (uint32_t(a->layout()) > uint32_t(AdapterLayout::MAX))
        fail(what + " has unknown layout " + std::to_string(uint32_t(a->layout())));
      const bool fused = a->layout() == AdapterLayout::ExpertsFused;
      const int64_t experts = fused ? a->num_experts() : 1;
      if (a->r() <= 0 || a->r() > 65536)
        fail(what + " has rank " + std::to_string(a->r()) + " (must be 1..65536)");
      if (a->in_features() <= 0 || a->out_features() <= 0 || a->in_features() > (1 << 24) ||
          a->out_features() > (1 << 24))
        fail(what + " has invalid features " + std::to_string(a->in_features()) + " -> " +
             std::to_string(a->out_features()));
      if (experts <= 0 || experts > 65536)
        fail(what + " has " + std::to_string(experts) + " experts");
      if (!(a->alpha() > 0) || !std::isfinite(a->alpha()))
        fail(what + " has alpha " + std::to_string(a->alpha()) + " (must be positive)");
      if (experts * a->r() * (a->in_features() + a->out_features()) > (int64_t(1) << 34))
        fail(what + " is implausibly large");
      if (!a->targets() || a->targets()->size() == 0)
        fail(what + " has no targets");
      int64_t rows = 0;
      for (uint32_t t = 0; t < a->targets()->size(); ++t) {
        const AdapterTarget* tg = a->targets()->Get(t);
        const std::string tw = what + " target " + std::to_string(t);
        if (tg->weight() >= numWeights_)
          fail(tw + " refers to weight " + std::to_string(tg->weight()) + " of " +
               std::to_string(numWeights_));
        const Weight& w = *p_.weights()->Get(tg->weight());
        const auto& sh = *w.shape();
        const uint32_t nd = sh.size();
        if (nd != (fused ? 3u : 2u) || (fused && sh.Get(0) != experts))
          fail(tw + ": weight " + nameOr(w.name(), "?") + " is not " +
               (fused ? "a stack of " + std::to_string(experts) + " expert matrices"
                      : std::string("a matrix")));
        if (sh.Get(nd - 1) != a->in_features())
          fail(tw + ": weight " + nameOr(w.name(), "?") + " has " + std::to_string(sh.Get(nd - 1)) +
               " input features, the adapter " + std::to_string(a->in_features()));
        if (tg->rows() <= 0 || tg->row_offset() < 0 || tg->rows() != sh.Get(nd - 2) ||
            tg->row_offset() + tg->rows() > a->out_features())
          fail(tw + ": rows [" + std::to_string(tg->row_offset()) + ", " +
               std::to_string(tg->row_offset() + tg->rows()) + ") do not fit weight " +
               nameOr(w.name(), "?") + " (" + std::to_string(sh.Get(nd - 2)) +
               " rows) within the adapter's " + std::to_string(a->out_features()) + " outputs");
        rows += tg->rows();
      }
      if (rows != a->out_features())
        fail(what + ": targets cover " + std::to_string(rows) + " of its " +
             std::to_string(a->out_features()) + " output rows");
      auto checkInit = [&](int32_t id, int64_t n, const char* which) {
        if (id < -1 || (id >= 0 && uint32_t(id) >= numWeights_))
          fail(what + ": " + which + " refers to weight " + std::to_string(id));
        if (id >= 0 && numel(*p_.weights()->Get(uint32_t(id))) != n)
          fail(what + ": " + which + " weight has " +
               std::to_string(numel(*p_.weights()->Get(uint32_t(id)))) + " values, expected " +
               std::to_string(n));
      };
      checkInit(a->init_a(), experts * a->r() * a->in_features(), "init_a");
      checkInit(a->init_b(), experts * a->r() * a->out_features(), "init_b");
    }
  }

  // Step.adapters: empty, or one entry per weight slot naming an adapter whose targets include the
  // slot's weight.
  void checkStepAdapters(const Step& s, const OpSignature& sig, const std::string& what) {
    if (!s.adapters() || s.adapters()->size() == 0)
      return;
    if (int(s.adapters()->size()) != sig.numWeightSlots)
      fail(what + ": lists " + std::to_string(s.adapters()->size()) + " adapters for " +
           std::to_string(sig.numWeightSlots) + " weight slots");
    for (uint32_t k = 0; k < s.adapters()->size(); ++k) {
      const int32_t ai = s.adapters()->Get(k);
      if (ai == -1)
        continue;
      if (ai < -1 || uint32_t(ai) >= numAdapters_)
        fail(what + ": slot " + sig.slotNames[k] + " refers to adapter " + std::to_string(ai) +
             " of " + std::to_string(numAdapters_));
      const int32_t wid = s.weights()->Get(k);
      const Adapter* a = p_.adapters()->Get(uint32_t(ai));
      bool found = false;
      for (const AdapterTarget* tg : *a->targets())
        found |= int64_t(tg->weight()) == wid;
      if (!found)
        fail(what + ": slot " + sig.slotNames[k] + " (weight " + std::to_string(wid) +
             ") is not a target of adapter " + nameOr(a->name(), "?"));
      if (s.op() == OpKind::Moe || s.op() == OpKind::MoeGrad) {
        const bool routed = k == slots::Gate || k == slots::Up || k == slots::Down;
        if (routed != (a->layout() == AdapterLayout::ExpertsFused))
          fail(what + ": slot " + sig.slotNames[k] + " needs " +
               (routed ? "an ExpertsFused" : "a Linear") + " adapter");
        if (routed && a->num_experts() != s.attrs_as_MoeAttrs()->num_experts())
          fail(what + ": adapter " + nameOr(a->name(), "?") + " has " +
               std::to_string(a->num_experts()) + " experts, the layer " +
               std::to_string(s.attrs_as_MoeAttrs()->num_experts()));
      } else if (a->layout() != AdapterLayout::Linear) {
        fail(what + ": slot " + sig.slotNames[k] + " needs a Linear adapter");
      }
    }
  }

  bool hasKvLayer(int layer) const {
    if (!p_.kv_layers())
      return false;
    for (const KvLayer* kv : *p_.kv_layers())
      if (kv->layer() == layer)
        return true;
    return false;
  }

  void checkIndices(const flatbuffers::Vector<uint32_t>* v, uint32_t limit, const std::string& what,
                    const char* kind) {
    if (!v)
      return;
    for (uint32_t x : *v)
      if (x >= limit)
        fail(what + ": " + kind + " " + std::to_string(x) + " out of range (plan has " +
             std::to_string(limit) + ")");
  }

  void checkRope(const Rope* r, const std::string& what) {
    if (!r)
      fail(what + ": missing rope parameters");
    if (r->dim() <= 0 || r->dim() % 2 || r->dim() > 1024 || r->theta() <= 0 ||
        uint32_t(r->type()) > uint32_t(RopeType::MAX))
      fail(what + ": invalid rope parameters (dim " + std::to_string(r->dim()) + ")");
  }

  // MoeAttrs.prefill_offload_*: a non-negative threshold, and when it is on (> 0) a GPU of the
  // plan that the MoE step itself runs on (the runtime streams inside the GPU's moe op).
  void checkPrefillOffload(const Step& s, const MoeAttrs& a, const std::string& what) {
    const int64_t minTokens = a.prefill_offload_min_tokens();
    const int32_t device = a.prefill_offload_device();
    if (minTokens < 0)
      fail(what + ": prefill_offload_min_tokens is " + std::to_string(minTokens) +
           " (a token count >= 0; 0 = never stream)");
    if (minTokens == 0 && device == -1)
      return;
    if (minTokens == 0)
      fail(what + ": prefill_offload_device is " + std::to_string(device) +
           " but prefill_offload_min_tokens is 0 (both set, or neither)");
    if (device < 0 || uint32_t(device) >= numDevices_)
      fail(what + ": prefill_offload_device " + std::to_string(device) +
           " out of range (plan has " + std::to_string(numDevices_) + " devices)");
    const Device* d = p_.devices()->Get(uint32_t(device));
    if (d->kind() != DeviceKind::GPU)
      fail(what + ": prefill_offload_device " + std::to_string(device) + " (" +
           nameOr(d->name(), "?") + ") is not a GPU; only a GPU computes streamed experts");
    if (s.device() != uint32_t(device))
      fail(what + ": prefill_offload_device " + std::to_string(device) + " (" +
           nameOr(d->name(), "?") + ") is not the device the step runs on (" +
           std::to_string(s.device()) + "); experts are streamed to the step's own GPU");
  }

  void checkAttrs(const Step& s, const std::string& what) {
    switch (s.attrs_type()) {
    case OpAttrs::AttentionAttrs: {
      auto a = s.attrs_as_AttentionAttrs();
      if (a->num_heads() <= 0 || a->num_kv_heads() <= 0 || a->head_dim() <= 0 ||
          a->num_heads() % a->num_kv_heads())
        fail(what + ": invalid head counts");
      checkRope(a->rope(), what);
      break;
    }
    case OpAttrs::MlaAttrs: {
      auto a = s.attrs_as_MlaAttrs();
      if (a->num_heads() <= 0 || a->kv_lora_rank() <= 0 || a->qk_rope_head_dim() <= 0 ||
          a->v_head_dim() <= 0 || a->qk_nope_head_dim() < 0)
        fail(what + ": invalid MLA dimensions");
      checkRope(a->rope(), what);
      bool direct = s.weights()->Get(slots::QProj) >= 0;
      bool lora = s.weights()->Get(slots::QAProj) >= 0 && s.weights()->Get(slots::QANorm) >= 0 &&
                  s.weights()->Get(slots::QBProj) >= 0;
      if (direct == lora)
        fail(what + ": needs either q_proj or all of q_a_proj, q_a_norm, q_b_proj");
      break;
    }
    case OpAttrs::MoeAttrs: {
      auto a = s.attrs_as_MoeAttrs();
      if (a->num_experts() <= 0 || a->experts_per_token() <= 0 ||
          a->experts_per_token() > a->num_experts() || a->n_group() <= 0 ||
          a->num_experts() % a->n_group() || a->topk_group() <= 0 ||
          a->topk_group() > a->n_group() || uint32_t(a->scoring()) > uint32_t(MoeScoring::MAX) ||
          uint32_t(a->topk_method()) > uint32_t(MoeTopk::MAX))
        fail(what + ": inconsistent MoE routing attributes");
      if (const auto* d = a->expert_devices(); d && d->size() > 0) {
        if (d->size() != uint32_t(a->num_experts()))
          fail(what + ": expert_devices lists " + std::to_string(d->size()) + " devices for " +
               std::to_string(a->num_experts()) + " experts");
        for (uint32_t e = 0; e < d->size(); ++e)
          if (d->Get(e) >= numDevices_)
            fail(what + ": expert " + std::to_string(e) + " is placed on device " +
                 std::to_string(d->Get(e)) + " of " + std::to_string(numDevices_));
      }
      checkPrefillOffload(s, *a, what);
      break;
    }
    case OpAttrs::RopeAttrs:
      checkRope(s.attrs_as_RopeAttrs()->rope(), what);
      break;
    default:
      break;
    }
  }

  void checkEntryPoint(const EntryPoint& ep, uint32_t index) {
    std::string epName = nameOr(ep.name(), "#" + std::to_string(index));
    checkIndices(ep.inputs(), numBuffers_, "entry '" + epName + "'", "input buffer");
    checkIndices(ep.outputs(), numBuffers_, "entry '" + epName + "'", "output buffer");
    if (!ep.inputs() || ep.inputs()->size() < 2 || !ep.outputs() || ep.outputs()->size() < 1)
      fail("entry '" + epName + "' must bind ids, positions and logits buffers");
    if (!ep.steps())
      fail("entry '" + epName + "' has no steps");
    for (uint32_t i = 0; i < ep.steps()->size(); ++i) {
      const Step& s = *ep.steps()->Get(i);
      std::string what =
          "entry '" + epName + "' step " + std::to_string(i) + " (" + nameOr(s.name(), "?") + ")";
      const OpSignature* sig = opSignature(s.op());
      if (!sig)
        fail(what + ": unknown op kind " + std::to_string(uint32_t(s.op())));
      if (s.device() >= numDevices_)
        fail(what + ": device " + std::to_string(s.device()) + " out of range");
      uint32_t nin = s.inputs() ? s.inputs()->size() : 0,
               nout = s.outputs() ? s.outputs()->size() : 0;
      if (int(nin) != sig->numInputs || int(nout) > sig->numOutputs || int(nout) < sig->minOutputs)
        fail(what + ": " + sig->name + " takes " + std::to_string(sig->numInputs) + " inputs and " +
             (sig->minOutputs == sig->numOutputs ? "" : std::to_string(sig->minOutputs) + " to ") +
             std::to_string(sig->numOutputs) + " outputs, step has " + std::to_string(nin) +
             " and " + std::to_string(nout));
      checkIndices(s.inputs(), numBuffers_, what, "input buffer");
      checkIndices(s.outputs(), numBuffers_, what, "output buffer");
      uint32_t nw = s.weights() ? s.weights()->size() : 0;
      if (int(nw) != sig->numWeightSlots)
        fail(what + ": " + sig->name + " has " + std::to_string(sig->numWeightSlots) +
             " weight slots, step lists " + std::to_string(nw));
      for (uint32_t w = 0; w < nw; ++w) {
        int32_t id = s.weights()->Get(w);
        if (id < -1 || (id >= 0 && uint32_t(id) >= numWeights_))
          fail(what + ": weight slot " + sig->slotNames[w] + " refers to weight " +
               std::to_string(id) + " of " + std::to_string(numWeights_));
        if (id < 0 && (sig->requiredWeights >> w & 1))
          fail(what + ": required weight " + sig->slotNames[w] + " is missing");
      }
      if (s.attrs_type() != sig->attrs)
        fail(what + ": attribute table does not match op " + sig->name);
      if (sig->attrs != OpAttrs::NONE && !s.attrs())
        fail(what + ": missing attributes");
      checkAttrs(s, what);
      checkStepAdapters(s, *sig, what);
      if ((s.op() == OpKind::Attention || s.op() == OpKind::MlaAttention) && !hasKvLayer(s.layer()))
        fail(what + ": attention layer " + std::to_string(s.layer()) + " has no KV-cache entry");
      checkIndices(s.wait_events(), ep.num_events(), what, "wait event");
      if (s.signal_event() < -1 ||
          (s.signal_event() >= 0 && uint32_t(s.signal_event()) >= ep.num_events()))
        fail(what + ": signal event " + std::to_string(s.signal_event()) + " out of range");
    }
  }

  const Plan& p_;
  std::string origin_;
  uint32_t numDevices_ = 0, numFiles_ = 0, numWeights_ = 0, numBuffers_ = 0, numAdapters_ = 0;
};

std::string dirOf(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
}

} // namespace

LoadedPlan LoadedPlan::fromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error("cannot open plan '" + path + "': " + std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  LoadedPlan p = fromBytes(std::move(bytes), path);
  p.baseDir_ = dirOf(path);
  return p;
}

LoadedPlan LoadedPlan::fromBytes(std::vector<uint8_t> bytes, const std::string& origin) {
  LoadedPlan p;
  p.bytes_ = std::move(bytes);
  p.origin_ = origin;
  p.baseDir_ = ".";
  // File layout: [u32 size][FlatBuffer of `size` bytes, identifier "KTPL"][u32 CRC-32 of the rest].
  const size_t n = p.bytes_.size();
  if (n < 12 || !flatbuffers::BufferHasIdentifier(p.bytes_.data(), plan::PlanIdentifier(),
                                                  /*size_prefixed=*/true))
    throw Error(origin + ": not a KT plan (missing the 'KTPL' file identifier)");
  uint32_t size = flatbuffers::ReadScalar<uint32_t>(p.bytes_.data());
  if (uint64_t(size) + 8 != n)
    throw Error(origin + ": truncated or padded plan (" + std::to_string(n) +
                " bytes, header says " + std::to_string(uint64_t(size) + 8) + ")");
  uint32_t stored = flatbuffers::ReadScalar<uint32_t>(p.bytes_.data() + n - 4);
  if (crc32(p.bytes_.data(), n - 4) != stored)
    throw Error(origin + ": corrupted plan (checksum mismatch)");
  // The verifier checks every offset and vector length against the buffer.
  flatbuffers::Verifier verifier(p.bytes_.data(), n - 4, /*max_depth=*/64, /*max_tables=*/10000000);
  if (!plan::VerifySizePrefixedPlanBuffer(verifier))
    throw Error(origin + ": corrupted plan (FlatBuffers verification failed)");
  p.root_ = plan::GetSizePrefixedPlan(p.bytes_.data());
  PlanValidator(*p.root_, origin).run();
  return p;
}

std::string LoadedPlan::resolveWeightPath(const std::string& path) const {
  if (!path.empty() && path[0] == '/')
    return path;
  return baseDir_ + "/" + path;
}

const plan::EntryPoint* LoadedPlan::entryPoint(const std::string& name) const {
  for (const plan::EntryPoint* ep : *root_->entry_points())
    if (ep->name() && ep->name()->str() == name)
      return ep;
  return nullptr;
}

} // namespace kt
