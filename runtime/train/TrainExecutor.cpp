#include "runtime/train/TrainExecutor.h"

#include "kernels/cpu/Linear.h"
#include "runtime/exec/LoraWeights.h"
#include "runtime/exec/WeightStore.h"
#include "runtime/exec/cpu/CpuOps.h"
#include "runtime/plan/OpSignature.h"
#include "runtime/support/Error.h"
#include "runtime/support/ThreadPool.h"

#include <chrono>
#include <cstring>

namespace kt::train {

namespace g = cpu::grad;
using plan::OpKind;

OpKind forwardKind(OpKind k) {
  switch (k) {
  case OpKind::RmsNormGrad:
    return OpKind::RmsNorm;
  case OpKind::LinearGrad:
    return OpKind::Linear;
  case OpKind::AttentionGrad:
    return OpKind::Attention;
  case OpKind::MlaAttentionGrad:
    return OpKind::MlaAttention;
  case OpKind::MoeGrad:
    return OpKind::Moe;
  case OpKind::MlpGrad:
    return OpKind::Mlp;
  default:
    return k;
  }
}

namespace {

bool isBackward(OpKind k) {
  return forwardKind(k) != k || k == OpKind::AdamW;
}

} // namespace

TrainExecutor::TrainExecutor(const LoadedPlan& plan, const WeightStore& weights, ThreadPool& pool,
                             AdapterSet& adapters)
    : plan_(plan), weights_(weights), pool_(pool), adapters_(adapters) {
  entry_ = plan.entryPoint("train_step");
  if (!entry_)
    throw Error(plan.origin() +
                ": plan has no train_step entry point (compile it with kt-compile --train lora)");
  if (entry_->inputs()->size() < 3 || entry_->outputs()->size() < 1)
    throw Error(plan.origin() + ": train_step must bind ids, positions, labels and loss buffers");
  if (adapters.size() != (plan.root().adapters() ? plan.root().adapters()->size() : 0))
    throw Error(plan.origin() + ": adapter set does not belong to this plan");
  bool lossStep = false;
  std::vector<PreparedStep*> gpuSteps;
  for (const plan::Step* s : *entry_->steps()) {
    lossStep |= s->op() == OpKind::CrossEntropyLoss;
    if (s->op() == OpKind::AdamW) {
      const plan::AdamWAttrs* a = s->attrs_as_AdamWAttrs();
      planOptimizer_ = {a->lr(),  a->beta1(),        a->beta2(),
                        a->eps(), a->weight_decay(), a->max_grad_norm()};
    }
    steps_.push_back(std::make_unique<Prepared>(prepare(*s)));
    // MoE steps run on the CPU next to their experts, whatever the step's device; the optimizer
    // update is the Trainer's (on the host).
    const OpKind fk = forwardKind(s->op());
    Prepared& p = *steps_.back();
    p.onGpu = plan.root().devices()->Get(s->device())->kind() == plan::DeviceKind::GPU &&
              fk != OpKind::Moe && s->op() != OpKind::AdamW;
    if (plan.root().devices()->Get(s->device())->kind() != plan::DeviceKind::CPU &&
        plan.root().devices()->Get(s->device())->kind() != plan::DeviceKind::GPU)
      throw Error(plan.origin() + ": train_step step '" + p.name + "' is placed on device '" +
                  plan.root().devices()->Get(s->device())->name()->str() +
                  "', which kt-rt train cannot run");
    if (p.onGpu)
      gpuSteps.push_back(&p);
  }
  if (!lossStep)
    throw Error(plan.origin() + ": train_step has no cross_entropy_loss step");
  if (!gpuSteps.empty())
    device_ = makeTrainDevice(plan, adapters, pool, gpuSteps);
}

std::string TrainExecutor::placement() const {
  std::map<std::string, std::pair<int, std::map<std::string, int>>> where;
  for (const auto& p : steps_) {
    if (p->step->op() == OpKind::AdamW)
      continue;
    const std::string dev =
        p->onGpu ? plan_.root().devices()->Get(p->step->device())->name()->str() : "cpu";
    auto& w = where[dev];
    ++w.first;
    ++w.second[plan::opSignature(p->step->op())->name];
  }
  std::string out;
  for (const auto& [dev, w] : where) {
    out += (out.empty() ? "" : "; ") + dev + ": " + std::to_string(w.first) + " steps (";
    bool first = true;
    for (const auto& [op, n] : w.second) {
      out += (first ? "" : ", ") + op + " " + std::to_string(n);
      first = false;
    }
    out += ")";
  }
  return out;
}

TrainExecutor::~TrainExecutor() = default;

const g::Lora* TrainExecutor::lora(const plan::Step& s, int slot, int expert) {
  if (!s.adapters() || s.adapters()->size() == 0)
    return nullptr;
  // The same resolution as inference (runtime/exec/LoraWeights): the target is the slot's weight.
  const plan::AdapterTarget* t = adapterTargetOf(plan_, s, slot);
  if (!t)
    return nullptr;
  AdapterState& a = adapters_[size_t(s.adapters()->Get(uint32_t(slot)))];
  // Rows [row_offset, row_offset + rows) of the adapter's output belong to this weight: B's rows.
  const int64_t off = t->row_offset() * a.r;
  return &loras_.emplace_back(g::Lora{a.a(expert), a.b(expert) + off, a.r, float(a.scale()),
                                      a.da(expert), a.db(expert) + off});
}

TrainExecutor::Prepared TrainExecutor::prepare(const plan::Step& s) {
  using namespace plan::slots;
  Prepared p;
  p.step = &s;
  p.name = s.name() ? s.name()->str() : "?";
  auto has = [&](int slot) { return s.weights()->Get(uint32_t(slot)) >= 0; };
  auto w = [&](int slot) {
    return has(slot) ? weights_.matrix(s.weights()->Get(uint32_t(slot))) : cpu::MatrixView{};
  };
  auto proj = [&](int slot, int biasSlot = -1) {
    return g::Projection{w(slot), biasSlot >= 0 ? w(biasSlot) : cpu::MatrixView{},
                         has(slot) ? lora(s, slot, 0) : nullptr};
  };
  switch (forwardKind(s.op())) {
  case OpKind::Embedding:
  case OpKind::LmHead:
  case OpKind::CrossEntropyLoss:
    p.w = w(0);
    break;
  case OpKind::RmsNorm:
    p.w = w(0);
    p.eps = s.attrs_as_RmsNormAttrs()->eps();
    break;
  case OpKind::Linear:
    p.proj = proj(0, 1);
    break;
  case OpKind::Attention: {
    const plan::AttentionAttrs& a = *s.attrs_as_AttentionAttrs();
    p.attnP.numHeads = a.num_heads();
    p.attnP.numKvHeads = a.num_kv_heads();
    p.attnP.headDim = a.head_dim();
    p.attnP.scale = a.scale();
    p.attnP.rope = cpuops::ropeParams(*a.rope());
    p.attnP.normEps = a.norm_eps();
    p.attnW.q = proj(Q, QBias);
    p.attnW.k = proj(K, KBias);
    p.attnW.v = proj(V, VBias);
    p.attnW.o = proj(O);
    p.attnW.qNorm = w(QNorm);
    p.attnW.kNorm = w(KNorm);
    break;
  }
  case OpKind::MlaAttention: {
    const plan::MlaAttrs& a = *s.attrs_as_MlaAttrs();
    p.mlaP.numHeads = a.num_heads();
    p.mlaP.qLoraRank = has(QProj) ? 0 : a.q_lora_rank();
    p.mlaP.kvLoraRank = a.kv_lora_rank();
    p.mlaP.qkNopeHeadDim = a.qk_nope_head_dim();
    p.mlaP.qkRopeHeadDim = a.qk_rope_head_dim();
    p.mlaP.vHeadDim = a.v_head_dim();
    p.mlaP.scale = a.scale();
    p.mlaP.rope = cpuops::ropeParams(*a.rope());
    p.mlaP.normEps = a.norm_eps();
    p.mlaW.q = proj(QProj);
    p.mlaW.qA = proj(QAProj);
    p.mlaW.qANorm = w(QANorm);
    p.mlaW.qB = proj(QBProj);
    p.mlaW.kvA = proj(KvAProj);
    p.mlaW.kvANorm = w(KvANorm);
    p.mlaW.kvB = proj(KvBProj);
    p.mlaW.o = proj(MlaO);
    break;
  }
  case OpKind::Mlp:
    p.mlp = {proj(MlpGate), proj(MlpUp), proj(MlpDown)};
    break;
  case OpKind::Moe: {
    const plan::MoeAttrs& a = *s.attrs_as_MoeAttrs();
    p.moeP = cpuops::moeRoutingParams(a);
    const int E = a.num_experts();
    for (int e = 0; e < E; ++e) {
      auto expert = [&](int slot) {
        const int32_t id = s.weights()->Get(uint32_t(slot));
        return g::Projection{weights_.slice(id, e), {}, lora(s, slot, e)};
      };
      p.experts.push_back({expert(Gate), expert(Up), expert(Down)});
    }
    p.moeW.router = w(Router);
    p.moeW.correctionBias = w(CorrectionBias);
    p.moeW.experts = p.experts.data();
    if (has(SharedGate)) {
      p.shared = {proj(SharedGate), proj(SharedUp), proj(SharedDown)};
      p.moeW.sharedExpertGate = w(SharedExpertGate);
    }
    break;
  }
  case OpKind::Add:
  case OpKind::Tap:
  case OpKind::AdamW:
    break;
  default:
    throw Error(plan_.origin() + ": train_step step '" + p.name + "' runs " +
                plan::opSignature(s.op())->name + ", which kt-rt train cannot run");
  }
  return p;
}

void TrainExecutor::runSteps(const TrainBatch& batch, int64_t normalizer, bool forwardOnly,
                             std::vector<Activation>& buf, LossSum* loss,
                             std::vector<float>* logits) {
  const int64_t B = batch.batch, L = batch.seqLen, T = B * L;
  if (T == 0 || int64_t(batch.ids.size()) != T || int64_t(batch.labels.size()) != T)
    throw Error("train batch: ids/labels do not hold batch × seqLen tokens");
  const int64_t vocab = plan_.root().model()->vocab_size();
  for (int32_t id : batch.ids)
    if (id < 0 || id >= vocab)
      throw Error("train batch: token id " + std::to_string(id) + " is outside the vocabulary");
  if (L > plan_.root().model()->max_position())
    throw Error("train batch: sequences of " + std::to_string(L) +
                " tokens exceed the model's maximum position " +
                std::to_string(plan_.root().model()->max_position()));
  buf.assign(plan_.root().buffers()->size(), Activation{});
  auto bindI32 = [&](int input, const std::vector<int32_t>& v) {
    Activation& a = buf[entry_->inputs()->Get(uint32_t(input))];
    a.i = v;
    a.rows = T;
    a.cols = 1;
  };
  bindI32(0, batch.ids);
  bindI32(1, batch.positions);
  bindI32(2, batch.labels);
  // Outputs the plan pruned (no gradient flows further down) still need somewhere to go.
  Activation scratch;
  if (device_)
    device_->beginRun(batch, !forwardOnly, buf.size());
  for (size_t si = 0; si < steps_.size(); ++si) {
    Prepared& p = *steps_[si];
    const plan::Step& s = *p.step;
    const OpKind op = s.op();
    if (forwardOnly && isBackward(op))
      continue;
    if (p.onGpu) {
      const auto started = std::chrono::steady_clock::now();
      TrainDevice::LossOut l;
      device_->run(p, batch, normalizer, forwardOnly, buf, &l, logits);
      if (profiling_) {
        device_->sync();
        OpTime& t = profile_[plan::opSignature(op)->name];
        t.seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        t.calls++;
      }
      if (op == OpKind::CrossEntropyLoss) {
        if (forwardOnly)
          return;
        loss->sum += l.sum;
        loss->count += l.count;
      }
      continue;
    }
    if (device_) // a host step: its inputs must be current on the host
      for (uint32_t i = 0; s.inputs() && i < s.inputs()->size(); ++i)
        device_->toHost(s.inputs()->Get(i), buf);
    auto in = [&](int i) -> Activation& { return buf[s.inputs()->Get(uint32_t(i))]; };
    const int nout = s.outputs() ? int(s.outputs()->size()) : 0;
    auto out = [&](int i) -> Activation& {
      return i < nout ? buf[s.outputs()->Get(uint32_t(i))] : scratch;
    };
    auto need = [&](const Activation& a, int64_t cols, const char* what) {
      if (a.rows != T || (cols > 0 && a.cols != cols) || int64_t(a.f.size()) != a.rows * a.cols)
        throw Error(plan_.origin() + ": train_step step '" + p.name + "': " + what + " is [" +
                    std::to_string(a.rows) + ", " + std::to_string(a.cols) + "], expected [" +
                    std::to_string(T) + ", " + (cols > 0 ? std::to_string(cols) : "*") + "]");
    };
    const auto started = std::chrono::steady_clock::now();
    switch (op) {
    case OpKind::Embedding: {
      Activation& y = out(0);
      y.resize(T, p.w.cols);
      for (int64_t t = 0; t < T; ++t)
        p.w.rowToF32(batch.ids[size_t(t)], y.f.data() + t * p.w.cols);
      break;
    }
    case OpKind::RmsNorm: {
      Activation& x = in(0);
      need(x, p.w.cols, "input");
      Activation y;
      y.resize(T, x.cols);
      g::rmsNormForward(pool_, x.f.data(), T, x.cols, p.w, p.eps, y.f.data());
      out(0) = std::move(y);
      break;
    }
    case OpKind::RmsNormGrad: {
      Activation &x = in(0), &dy = in(1);
      need(x, p.w.cols, "input");
      need(dy, x.cols, "upstream gradient");
      Activation dx;
      dx.resize(T, x.cols);
      g::rmsNormBackward(pool_, x.f.data(), T, x.cols, p.w, p.eps, dy.f.data(), dx.f.data());
      out(0) = std::move(dx);
      break;
    }
    case OpKind::Linear: {
      Activation& x = in(0);
      need(x, p.proj.w.cols, "input");
      Activation y;
      y.resize(T, p.proj.w.rows);
      g::linearForward(pool_, p.proj, x.f.data(), T, y.f.data());
      out(0) = std::move(y);
      break;
    }
    case OpKind::LinearGrad: {
      Activation &x = in(0), &dy = in(1);
      need(x, p.proj.w.cols, "input");
      need(dy, p.proj.w.rows, "upstream gradient");
      Activation dx;
      if (nout > 0)
        dx.resize(T, x.cols);
      g::linearBackward(pool_, p.proj, x.f.data(), T, dy.f.data(),
                        nout > 0 ? dx.f.data() : nullptr);
      if (nout > 0)
        out(0) = std::move(dx);
      break;
    }
    case OpKind::Attention:
    case OpKind::AttentionGrad:
    case OpKind::MlaAttention:
    case OpKind::MlaAttentionGrad: {
      const bool mla = op == OpKind::MlaAttention || op == OpKind::MlaAttentionGrad;
      const bool back = op == OpKind::AttentionGrad || op == OpKind::MlaAttentionGrad;
      Activation& x = in(0);
      const int64_t H = mla ? p.mlaW.o.w.rows : p.attnW.o.w.rows;
      need(x, 0, "input");
      Activation r;
      r.resize(T, back ? x.cols : H);
      if (!back) {
        if (mla)
          g::mlaForward(pool_, p.mlaP, p.mlaW, x.f.data(), B, L, r.f.data());
        else
          g::gqaForward(pool_, p.attnP, p.attnW, x.f.data(), B, L, r.f.data());
      } else {
        Activation& dy = in(2);
        need(dy, H, "upstream gradient");
        if (mla)
          g::mlaBackward(pool_, p.mlaP, p.mlaW, x.f.data(), B, L, dy.f.data(), r.f.data());
        else
          g::gqaBackward(pool_, p.attnP, p.attnW, x.f.data(), B, L, dy.f.data(), r.f.data());
      }
      out(0) = std::move(r);
      break;
    }
    case OpKind::Mlp:
    case OpKind::MlpGrad:
    case OpKind::Moe:
    case OpKind::MoeGrad: {
      const bool moe = op == OpKind::Moe || op == OpKind::MoeGrad;
      const bool back = op == OpKind::MlpGrad || op == OpKind::MoeGrad;
      Activation& x = in(0);
      const int64_t H = moe ? p.experts[0].down.w.rows : p.mlp.down.w.rows;
      need(x, 0, "input");
      Activation r;
      r.resize(T, back ? x.cols : H);
      if (moe)
        p.moeW.shared = p.shared.gate.w.data ? &p.shared : nullptr;
      if (!back) {
        if (moe)
          g::moeForward(pool_, p.moeP, p.moeW, x.f.data(), T, r.f.data());
        else
          g::mlpForward(pool_, p.mlp, x.f.data(), T, r.f.data());
      } else {
        Activation& dy = in(1);
        need(dy, H, "upstream gradient");
        if (moe)
          g::moeBackward(pool_, p.moeP, p.moeW, x.f.data(), T, dy.f.data(), r.f.data());
        else
          g::mlpBackward(pool_, p.mlp, x.f.data(), T, dy.f.data(), r.f.data());
      }
      out(0) = std::move(r);
      break;
    }
    case OpKind::Add: {
      Activation &a = in(0), &b = in(1);
      if (a.f.size() != b.f.size())
        throw Error(plan_.origin() + ": train_step step '" + p.name + "' adds [" +
                    std::to_string(a.rows) + ", " + std::to_string(a.cols) + "] and [" +
                    std::to_string(b.rows) + ", " + std::to_string(b.cols) + "]");
      Activation y;
      y.resize(a.rows, a.cols);
      g::addForward(a.f.data(), b.f.data(), int64_t(a.f.size()), y.f.data());
      out(0) = std::move(y);
      break;
    }
    case OpKind::Tap:
      out(0) = in(0);
      break;
    case OpKind::LmHead: {
      Activation& x = in(0);
      need(x, p.w.cols, "input");
      Activation y;
      y.resize(T, p.w.rows);
      cpu::linear(pool_, x.f.data(), T, p.w, nullptr, y.f.data());
      out(0) = std::move(y);
      break;
    }
    case OpKind::CrossEntropyLoss: {
      Activation& x = in(0);
      need(x, p.w.cols, "input");
      if (forwardOnly) {
        logits->resize(static_cast<size_t>(T * p.w.rows));
        cpu::linear(pool_, x.f.data(), T, p.w, nullptr, logits->data());
        return;
      }
      Activation dx;
      dx.resize(T, x.cols);
      g::LossResult r = g::lmHeadLossBackward(pool_, p.w, x.f.data(), B, L, batch.labels.data(),
                                              dx.f.data(), normalizer);
      loss->sum += r.loss * double(normalizer);
      loss->count += r.count;
      out(0) = std::move(dx);
      Activation& l = out(1);
      l.resize(1, 2);
      l.f[0] = float(r.loss * double(normalizer));
      l.f[1] = float(r.count);
      break;
    }
    case OpKind::AdamW:
      break; // the Trainer's update (after every micro-batch of the optimizer step)
    default:
      throw Error(plan_.origin() + ": train_step step '" + p.name + "' cannot run in training");
    }
    if (device_)
      for (uint32_t i = 0; s.outputs() && i < s.outputs()->size(); ++i)
        device_->hostWrote(s.outputs()->Get(i));
    if (profiling_) {
      OpTime& t = profile_[plan::opSignature(op)->name];
      t.seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      t.calls++;
    }
  }
  if (device_ && !forwardOnly)
    device_->endRun(true);
  if (forwardOnly)
    throw Error(plan_.origin() + ": train_step has no cross_entropy_loss step");
}

LossSum TrainExecutor::accumulate(const TrainBatch& batch, int64_t normalizer) {
  if (normalizer <= 0)
    throw Error("train step: no predicted positions (every label is ignored)");
  std::vector<Activation> buffers;
  LossSum loss;
  runSteps(batch, normalizer, false, buffers, &loss, nullptr);
  return loss;
}

std::vector<float> TrainExecutor::logits(const TrainBatch& batch) {
  std::vector<Activation> buffers;
  std::vector<float> out;
  runSteps(batch, 1, true, buffers, nullptr, &out);
  return out;
}

} // namespace kt::train
