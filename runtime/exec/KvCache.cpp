#include "runtime/exec/KvCache.h"

#include "runtime/support/Error.h"

namespace kt {

KvCache::KvCache(const plan::Plan& plan, int numSlots)
    : lengths_(size_t(numSlots), 0), data_(size_t(numSlots)) {
  if (plan.kv_layers()) {
    for (const plan::KvLayer* kv : *plan.kv_layers()) {
      LayerSpec s;
      if (kv->kind() == plan::KvKind::Gqa) {
        s.kRow = int64_t(kv->num_kv_heads()) * kv->k_dim();
        s.vRow = int64_t(kv->num_kv_heads()) * kv->v_dim();
      } else {
        s.kRow = kv->k_dim();
        s.vRow = kv->v_dim();
      }
      specs_[kv->layer()] = s;
    }
  }
}

KvCache::KvCache(const KvCache& o) : specs_(o.specs_), lengths_(o.lengths_), data_(o.data_) {}

KvCache::~KvCache() {
  if (auto l = listener_.lock())
    for (int s = 0; s < numSlots(); ++s)
      l->slotReleased(s);
}

void KvCache::reset(int slot) {
  setLength(slot, 0);
  if (auto l = listener_.lock())
    l->slotReleased(slot);
}

const KvCache::LayerSpec& KvCache::spec(int layer) const {
  auto it = specs_.find(layer);
  if (it == specs_.end())
    throw Error("KV cache: layer " + std::to_string(layer) + " has no cache entry");
  return it->second;
}

std::vector<float>& KvCache::grow(std::vector<float>& a, int64_t row, int64_t tokens) {
  size_t need = size_t(row * tokens);
  if (a.size() < need) {
    // Grow geometrically so that decoding token by token does not copy the cache every step.
    // (Doubling the capacity, not the size: reserve(2 * size) after a one-row resize exceeded the
    // capacity again at every step, so each decoded token copied every layer's whole cache.)
    if (a.capacity() < need)
      a.reserve(std::max(need, a.capacity() * 2));
    a.resize(need);
  }
  return a;
}

float* KvCache::k(int slot, int layer, int64_t tokens) {
  return grow(data_.at(size_t(slot))[layer].first, kRow(layer), tokens).data();
}

float* KvCache::v(int slot, int layer, int64_t tokens) {
  return grow(data_.at(size_t(slot))[layer].second, vRow(layer), tokens).data();
}

uint64_t KvCache::bytes() const {
  uint64_t b = 0;
  for (const auto& slot : data_)
    for (const auto& kv : slot)
      b += (kv.second.first.capacity() + kv.second.second.capacity()) * sizeof(float);
  return b;
}

} // namespace kt
