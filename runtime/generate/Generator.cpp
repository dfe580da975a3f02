#include "runtime/generate/Generator.h"

#include "runtime/support/Error.h"

#include <chrono>

namespace kt {

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Batch prefillBatch(const std::vector<std::vector<int32_t>>& seqs) {
  Batch b;
  for (size_t s = 0; s < seqs.size(); ++s) {
    if (seqs[s].empty())
      throw Error("sequence " + std::to_string(s) + " is empty");
    b.chunks.push_back({int(s), int64_t(b.ids.size()), int64_t(seqs[s].size()), 0});
    for (size_t i = 0; i < seqs[s].size(); ++i) {
      b.ids.push_back(seqs[s][i]);
      b.positions.push_back(int32_t(i));
    }
  }
  return b;
}
} // namespace

std::vector<std::vector<float>> scoreSequences(
    Model& model, const std::vector<std::vector<int32_t>>& seqs,
    const std::function<void(const std::string&, int, const float*, int64_t, int64_t)>& taps) {
  KvCache kv(model.plan().root(), int(seqs.size()));
  Batch b = prefillBatch(seqs);
  std::function<void(const std::string&, const Activation&)> sink;
  if (taps)
    sink = [&](const std::string& name, const Activation& a) {
      if (a.f.empty()) // i32 taps (a MoE step's "route.<layer>" expert ids) are not f32 rows
        return;
      for (const SequenceChunk& c : b.chunks)
        taps(name, c.slot, a.f.data() + c.start * a.cols, c.len, a.cols);
    };
  Activation logits = model.executor().run("prefill", b, kv, taps ? &sink : nullptr);
  std::vector<std::vector<float>> out;
  for (const SequenceChunk& c : b.chunks)
    out.emplace_back(logits.f.begin() + c.start * logits.cols,
                     logits.f.begin() + (c.start + c.len) * logits.cols);
  return out;
}

GenerateResult generate(Model& model, const GenerateRequest& req, const GenerateCallbacks& cb) {
  const int n = int(req.prompts.size());
  const int64_t vocab = model.info().vocab_size();
  GenerateResult res;
  res.newIds.resize(size_t(n));
  KvCache kv(model.plan().root(), n);
  std::vector<Sampler> samplers;
  for (int s = 0; s < n; ++s) {
    SamplerConfig sc = req.sampling;
    sc.seed += uint64_t(s); // independent but reproducible streams per sequence
    samplers.emplace_back(sc);
  }
  std::vector<std::vector<int32_t>> history = req.prompts;
  std::vector<bool> running(size_t(n), req.maxNewTokens > 0);

  Batch b = prefillBatch(req.prompts);
  for (const SequenceChunk& c : b.chunks)
    b.outputRows.push_back(c.start + c.len - 1);
  auto t0 = std::chrono::steady_clock::now();
  Activation logits = model.executor().run("prefill", b, kv);
  res.prefillSeconds = since(t0);
  res.prefillTokens = b.tokens();

  std::vector<int> rowOf(static_cast<size_t>(n));
  for (int s = 0; s < n; ++s)
    rowOf[size_t(s)] = s;
  t0 = std::chrono::steady_clock::now();
  for (int step = 0; step < req.maxNewTokens; ++step) {
    Batch next;
    for (int s = 0; s < n; ++s) {
      if (!running[size_t(s)])
        continue;
      const float* row = logits.f.data() + int64_t(rowOf[size_t(s)]) * vocab;
      if (cb.onLogits)
        cb.onLogits(s, row, vocab);
      int32_t id = samplers[size_t(s)].sample(row, vocab, history[size_t(s)]);
      res.newIds[size_t(s)].push_back(id);
      history[size_t(s)].push_back(id);
      bool keep = !cb.onToken || cb.onToken(s, id);
      for (int32_t stop : req.stopIds)
        if (id == stop)
          keep = false;
      if (int(res.newIds[size_t(s)].size()) >= req.maxNewTokens)
        keep = false;
      running[size_t(s)] = keep;
      if (keep) {
        rowOf[size_t(s)] = int(next.chunks.size());
        next.chunks.push_back(
            {s, int64_t(next.ids.size()), 1, int64_t(history[size_t(s)].size() - 1)});
        next.ids.push_back(id);
        next.positions.push_back(int32_t(history[size_t(s)].size() - 1));
        next.outputRows.push_back(int64_t(next.ids.size() - 1));
      }
    }
    if (next.ids.empty() || (cb.cancelled && cb.cancelled()))
      break;
    logits = model.executor().run("decode", next, kv);
    res.decodeTokens += next.tokens();
  }
  res.decodeSeconds = since(t0);
  return res;
}

} // namespace kt
