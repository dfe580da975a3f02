#include "runtime/plan/OpSignature.h"
#include "runtime/plan/PlanReader.h"
#include "runtime/support/DType.h"
#include "tools/kt-rt/Args.h"
#include "tools/kt-rt/Commands.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

namespace kt::cli {

static std::string shapeOf(const flatbuffers::Vector<int64_t>* s) {
  std::string o = "[";
  for (uint32_t i = 0; s && i < s->size(); ++i)
    o += (i ? "x" : "") + (s->Get(i) < 0 ? std::string("T") : std::to_string(s->Get(i)));
  return o + "]";
}

int cmdInspect(int argc, char** argv) {
  Args args(argc, argv, 2, {}, {"--steps", "--weights"});
  if (args.positional().size() != 1) {
    std::fprintf(stderr, "usage: kt-rt inspect PLAN [--steps] [--weights]\n");
    return 2;
  }
  LoadedPlan lp = LoadedPlan::fromFile(args.positional()[0]);
  const plan::Plan& p = lp.root();
  const plan::ModelInfo& m = *p.model();
  std::printf("plan        %s (format v%u, %s)\n", lp.origin().c_str(), p.version(),
              p.producer() ? p.producer()->c_str() : "?");
  std::printf("model       %s from %s\n", m.arch() ? m.arch()->c_str() : "?",
              m.source() ? m.source()->c_str() : "?");
  std::printf("            %d layers, hidden %lld, vocab %lld, max positions %lld, compute %s\n",
              m.num_layers(), (long long)m.hidden_size(), (long long)m.vocab_size(),
              (long long)m.max_position(), dtypeName(DType(m.compute_dtype())));
  std::printf(
      "tokenizer   %s\n",
      p.tokenizer() && p.tokenizer()->tokenizer_json() && p.tokenizer()->tokenizer_json()->size()
          ? (std::to_string(p.tokenizer()->tokenizer_json()->size()) + " bytes embedded").c_str()
          : "none");
  std::printf("devices    ");
  for (const plan::Device* d : *p.devices()) {
    std::printf(" %s", d->name()->c_str());
    if (d->memory_budget() > 0) // the budget kt-partition placed for
      std::printf(" (budget %.2f GiB)", double(d->memory_budget()) / (1 << 30));
  }
  if (p.model()->gpu_quant() == plan::QuantScheme::Int8PerChannel)
    std::printf("\ngpu weights int8 per row (--gpu-quant int8, quantized at upload)");
  if (p.model()->gpu_quant() == plan::QuantScheme::Int4Group)
    std::printf("\ngpu weights int4, f16 scale per row and 128 columns (--gpu-quant int4, "
                "quantized at upload)");
  std::printf("\nweight files\n");
  if (p.weight_files())
    for (const plan::WeightFile* f : *p.weight_files())
      std::printf("  %s (%.1f MiB)\n", f->path()->c_str(), double(f->size()) / (1 << 20));
  std::map<std::string, std::pair<int, uint64_t>> perDevice;
  uint32_t nw = p.weights() ? p.weights()->size() : 0;
  for (uint32_t i = 0; i < nw; ++i) {
    const plan::Weight* w = p.weights()->Get(i);
    uint64_t bytes = 0;
    for (const plan::Segment* s : *w->segments())
      bytes += s->size();
    auto& e = perDevice[p.devices()->Get(w->device())->name()->str()];
    e.first++;
    e.second += bytes;
    if (args.has("--weights"))
      std::printf("  w%-4u %-40s %-5s %-16s %s %u segment(s)\n", i, w->name()->c_str(),
                  dtypeName(DType(w->dtype())), shapeOf(w->shape()).c_str(),
                  p.devices()->Get(w->device())->name()->c_str(), w->segments()->size());
  }
  std::printf("weights     %u tensors\n", nw);
  for (const auto& [dev, e] : perDevice)
    std::printf("  on %-10s %d tensors, %.2f MiB\n", dev.c_str(), e.first,
                double(e.second) / (1 << 20));
  std::printf("buffers     %u\n", p.buffers() ? p.buffers()->size() : 0);
  if (p.kv_layers()) {
    std::printf("kv cache    %u layers:", p.kv_layers()->size());
    for (const plan::KvLayer* kv : *p.kv_layers())
      std::printf(" %d:%s(%d)", kv->layer(), kv->kind() == plan::KvKind::Mla ? "mla" : "gqa",
                  kv->kind() == plan::KvKind::Mla ? kv->k_dim() + kv->v_dim()
                                                  : 2 * kv->num_kv_heads() * kv->k_dim());
    std::printf(" floats/token\n");
  }
  for (const plan::EntryPoint* ep : *p.entry_points()) {
    std::printf("entry       %s: %u steps\n", ep->name()->c_str(), ep->steps()->size());
    // Prefill offload (kt-compile --prefill-offload): MoE steps that stream their CPU-held
    // experts to a GPU from some prompt length on.
    int offloaded = 0;
    int64_t fewest = 0, most = 0;
    std::string to;
    for (const plan::Step* s : *ep->steps())
      if (const plan::MoeAttrs* a = s->attrs_as_MoeAttrs();
          a && a->prefill_offload_min_tokens() > 0) {
        const int64_t n = a->prefill_offload_min_tokens();
        fewest = offloaded ? std::min(fewest, n) : n;
        most = offloaded ? std::max(most, n) : n;
        to = p.devices()->Get(uint32_t(a->prefill_offload_device()))->name()->str();
        ++offloaded;
      }
    if (offloaded)
      std::printf("            prefill offload: %d MoE step(s) stream CPU-held experts to %s from "
                  "%lld%s tokens\n",
                  offloaded, to.c_str(), (long long)fewest,
                  most > fewest ? ("-" + std::to_string(most)).c_str() : "");
    if (!args.has("--steps"))
      continue;
    for (uint32_t i = 0; i < ep->steps()->size(); ++i) {
      const plan::Step* s = ep->steps()->Get(i);
      const plan::OpSignature* sig = plan::opSignature(s->op());
      std::printf("  %3u %-14s %-24s %-10s in(", i, sig->name, s->name()->c_str(),
                  p.devices()->Get(s->device())->name()->c_str());
      for (uint32_t j = 0; j < s->inputs()->size(); ++j)
        std::printf("%s%s", j ? "," : "", p.buffers()->Get(s->inputs()->Get(j))->name()->c_str());
      std::printf(") out(%s)", p.buffers()->Get(s->outputs()->Get(0))->name()->c_str());
      for (uint32_t j = 0; s->weights() && j < s->weights()->size(); ++j)
        if (s->weights()->Get(j) >= 0)
          std::printf(" %s=w%d", sig->slotNames[j], s->weights()->Get(j));
      if (const plan::MoeAttrs* a = s->attrs_as_MoeAttrs();
          a && a->prefill_offload_min_tokens() > 0)
        std::printf(" stream>=%lld@%s", (long long)a->prefill_offload_min_tokens(),
                    p.devices()->Get(uint32_t(a->prefill_offload_device()))->name()->c_str());
      std::printf("\n");
    }
  }
  return 0;
}

} // namespace kt::cli
