#include "runtime/generate/Session.h"

#include "runtime/support/Error.h"

#include <chrono>

namespace kt {

Session::Session(Model& model) : model_(model), kv_(model.plan().root(), 1) {}

void Session::reset() {
  history_.clear();
  kv_.reset(0);
}

TurnStats Session::generate(const std::vector<int32_t>& tokens, const SessionLimits& limits,
                            Sampler& sampler, const std::function<bool(int32_t)>& onToken,
                            const std::function<bool()>& cancelled) {
  if (tokens.empty())
    throw Error("empty prompt");
  TurnStats st;
  st.promptTokens = int64_t(tokens.size());
  // Reuse the cached prefix; at least the last prompt token is recomputed to get fresh logits.
  size_t keep = 0;
  while (keep < history_.size() && keep + 1 < tokens.size() && history_[keep] == tokens[keep])
    ++keep;
  history_.resize(keep);
  kv_.setLength(0, int64_t(keep));
  st.reusedTokens = int64_t(keep);

  const int64_t vocab = model_.info().vocab_size();
  auto chunk = [&](const int32_t* ids, size_t n) {
    Batch b;
    b.chunks.push_back({0, 0, int64_t(n), int64_t(history_.size())});
    for (size_t i = 0; i < n; ++i) {
      b.ids.push_back(ids[i]);
      b.positions.push_back(int32_t(history_.size() + i));
    }
    b.outputRows.push_back(int64_t(n) - 1);
    Activation logits = model_.executor().run(n > 1 ? "prefill" : "decode", b, kv_);
    history_.insert(history_.end(), ids, ids + n);
    return logits;
  };

  auto t0 = std::chrono::steady_clock::now();
  Activation logits = chunk(tokens.data() + keep, tokens.size() - keep);
  st.prefillSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < limits.maxNewTokens; ++i) {
    if (cancelled && cancelled()) {
      st.cancelled = true;
      break;
    }
    int32_t id = sampler.sample(logits.f.data(), vocab, history_);
    ++st.newTokens;
    bool eos = false;
    for (int32_t s : limits.stopIds)
      eos |= id == s;
    if (eos) {
      st.stoppedByEos = true;
      break;
    }
    // The last token's K/V is not computed: a following turn recomputes it as part of its prompt.
    if (!onToken(id) || i + 1 == limits.maxNewTokens)
      break;
    if (int64_t(history_.size()) + 1 > model_.info().max_position())
      break;
    logits = chunk(&id, 1);
  }
  st.decodeSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return st;
}

} // namespace kt
