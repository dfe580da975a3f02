#pragma once
// The KV cache: per sequence slot and attention layer, the rows the attention op keeps per token
// (GQA: keys and values of every KV head; MLA: the compressed latent and the shared rope key).
// Contiguous per (slot, layer) for now; the paged, tiered cache replaces this behind the same API.
#include "runtime/plan/PlanReader.h"

#include <cstdint>
#include <map>
#include <vector>

namespace kt {

class KvCache {
public:
  KvCache(const plan::Plan& plan, int numSlots);

  int numSlots() const { return int(lengths_.size()); }
  int64_t length(int slot) const { return lengths_.at(size_t(slot)); }
  void setLength(int slot, int64_t len) { lengths_.at(size_t(slot)) = len; }
  void reset(int slot) { setLength(slot, 0); }

  // Row sizes (floats per token) of the two arrays of `layer`.
  int64_t kRow(int layer) const { return spec(layer).kRow; }
  int64_t vRow(int layer) const { return spec(layer).vRow; }
  // Arrays with room for at least `tokens` positions of `slot` at `layer`.
  float* k(int slot, int layer, int64_t tokens);
  float* v(int slot, int layer, int64_t tokens);
  uint64_t bytes() const;

private:
  struct LayerSpec {
    int64_t kRow = 0, vRow = 0;
  };
  const LayerSpec& spec(int layer) const;
  std::vector<float>& grow(std::vector<float>& a, int64_t row, int64_t tokens);

  std::map<int, LayerSpec> specs_;
  std::vector<int64_t> lengths_;
  std::vector<std::map<int, std::pair<std::vector<float>, std::vector<float>>>> data_;
};

} // namespace kt
