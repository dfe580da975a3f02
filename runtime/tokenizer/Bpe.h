// The BPE model: vocabulary + ranked merges, applied to one pre-tokenized word at a time.
// Behaviour follows HF tokenizers' BPE: merges are applied lowest rank first (leftmost on ties),
// unknown characters fall back to "<0xNN>" byte tokens when byte_fallback is set, then to the unk
// token (fused when fuse_unk), and ignore_merges (Llama 3) looks the whole word up first.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/tokenizer/Json.h"

namespace kt::tok {

class BpeModel {
public:
  // `j` is tokenizer.json's "model" object. Throws ParseError naming the offending field.
  static std::unique_ptr<BpeModel> parse(const json& j, const std::string& path);

  // Appends the ids of `word` to `out`. Thread-safe.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  int32_t tokenToId(std::string_view token) const; // -1 when absent
  const std::string* idToToken(int32_t id) const;  // nullptr when absent
  int32_t maxId() const { return static_cast<int32_t>(idToToken_.size()) - 1; }
  size_t vocabCount() const { return vocab_.size(); }
  bool byteFallback() const { return byteFallback_; }

private:
  BpeModel() = default;
  struct MergeValue {
    int32_t rank;
    int32_t newId;
  };
  // Open-addressing map from a packed (left id, right id) pair to its merge. Merges are looked
  // up for every adjacent pair of every word, so this avoids std::unordered_map's node chasing.
  class PairMap {
  public:
    void reserve(size_t n);
    // Later insertions of the same pair overwrite earlier ones, like collecting into a HashMap.
    void insert(uint64_t key, MergeValue v);
    const MergeValue* find(uint64_t key) const;

  private:
    std::vector<uint64_t> keys_;
    std::vector<MergeValue> values_;
    size_t mask_ = 0, size_ = 0;
  };
  static uint64_t pairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  void tokenizeSegment(std::string_view word, std::vector<int32_t>& out) const;
  void initialSymbols(std::string_view word, std::vector<int32_t>& syms) const;
  void mergeSmall(std::vector<int32_t>& syms) const;
  void mergeLarge(std::vector<int32_t>& syms) const;

  std::vector<std::string> idToToken_;
  std::vector<bool> hasId_;
  std::unordered_map<std::string_view, int32_t> vocab_; // views into idToToken_
  PairMap merges_;
  int32_t unkId_ = -1;
  bool fuseUnk_ = false;
  bool byteFallback_ = false;
  bool ignoreMerges_ = false;
  std::string prefix_, suffix_; // continuing_subword_prefix / end_of_word_suffix
  int32_t byteIds_[256];        // "<0xNN>" ids for byte fallback, -1 when missing

  // Long words (SentencePiece-style tokenizers have no pre-tokenizer, so a whole paragraph is one
  // word) are cut where no merge can ever join the two sides: between characters c1, c2 that are
  // both single-character tokens and such that no merge has a left side ending in c1 and a right
  // side starting in c2. Each piece then merges exactly as it would inside the whole word, and
  // the pieces (mostly words) hit the cache.
  PairMap joinable_; // (last char of merge left, first char of merge right) -> unused
  bool canSegment_ = false;
  std::unordered_map<char32_t, int32_t> charIds_; // single-character tokens

  // Words repeat a lot in real text, so merged words are cached (bounded; restarted when full).
  static constexpr size_t kCacheCapacity = 65536;
  static constexpr size_t kCacheMaxWordBytes = 256;
  mutable std::mutex cacheMutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

} // namespace kt::tok
