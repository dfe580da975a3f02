#pragma once
// The KV cache: per sequence slot and attention layer, the rows the attention op keeps per token
// (GQA: keys and values of every KV head; MLA: the compressed latent and the shared rope key).
// Contiguous per (slot, layer) on the host; GPU attention layers keep theirs in the CUDA backend's
// paged pool (runtime/exec/cuda/GpuKvPool.h), which learns through a KvSlotListener when a slot's
// positions are dropped.
#include "runtime/plan/PlanReader.h"

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

namespace kt {

// Told when a slot's cached positions are dropped: reset(slot), or every slot when the KvCache
// goes away. A device backend that keeps its own copy of the cache returns the slot's memory.
class KvSlotListener {
public:
  virtual ~KvSlotListener() = default;
  virtual void slotReleased(int slot) = 0;
};

class KvCache {
public:
  KvCache(const plan::Plan& plan, int numSlots);
  ~KvCache();
  // A copy holds the same positions but tells no listener (the executor attaches one per run).
  KvCache(const KvCache& o);
  KvCache& operator=(const KvCache&) = delete;

  int numSlots() const { return int(lengths_.size()); }
  int64_t length(int slot) const { return lengths_.at(size_t(slot)); }
  void setLength(int slot, int64_t len) { lengths_.at(size_t(slot)) = len; }
  void reset(int slot);
  // One listener (the executor attaches its device backend's at every run; null: none). Held
  // weakly: a listener that is gone is not called.
  void listen(const std::shared_ptr<KvSlotListener>& listener) { listener_ = listener; }

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
  std::weak_ptr<KvSlotListener> listener_;
};

} // namespace kt
