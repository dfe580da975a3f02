#pragma once
// One conversation with the model: the tokens it has seen and their KV cache. A new request that
// starts with the tokens already cached (the previous turns of a chat) only computes the rest.
#include "runtime/exec/Model.h"
#include "runtime/generate/Sampler.h"

#include <functional>
#include <string>
#include <vector>

namespace kt {

struct SessionLimits {
  int maxNewTokens = 256;
  std::vector<int32_t> stopIds;
};

struct TurnStats {
  int64_t promptTokens = 0; // tokens of the request
  int64_t reusedTokens = 0; // of which served from the KV cache
  int64_t newTokens = 0;
  double prefillSeconds = 0, decodeSeconds = 0;
  bool stoppedByEos = false, cancelled = false;
  double prefillTokPerSec() const {
    return prefillSeconds > 0 ? double(promptTokens - reusedTokens) / prefillSeconds : 0;
  }
  double decodeTokPerSec() const {
    return decodeSeconds > 0 ? double(newTokens > 1 ? newTokens - 1 : 0) / decodeSeconds : 0;
  }
};

class Session {
public:
  explicit Session(Model& model);

  // Generates after `tokens` (the whole conversation so far). onToken returns false to stop
  // (a stop string matched); cancelled() is polled between tokens (Ctrl-C).
  TurnStats generate(const std::vector<int32_t>& tokens, const SessionLimits& limits,
                     Sampler& sampler, const std::function<bool(int32_t)>& onToken,
                     const std::function<bool()>& cancelled = {});
  const std::vector<int32_t>& history() const { return history_; }
  void reset();

private:
  Model& model_;
  KvCache kv_;
  std::vector<int32_t> history_; // tokens whose K/V are in the cache
};

} // namespace kt
