#pragma once
// A batch of new tokens for several sequences, laid out one sequence after another.
#include <cstdint>
#include <vector>

namespace kt {

struct SequenceChunk {
  int slot = 0;      // KV-cache slot of the sequence
  int64_t start = 0; // first row of the chunk in the batch
  int64_t len = 0;   // new tokens
  int64_t pos0 = 0;  // position of the first new token (= tokens already cached)
};

struct Batch {
  std::vector<SequenceChunk> chunks;
  std::vector<int32_t> ids;       // [tokens]
  std::vector<int32_t> positions; // [tokens]
  // Rows whose logits are wanted (empty: every row). Decoding needs only each sequence's last row.
  std::vector<int64_t> outputRows;
  int64_t tokens() const { return int64_t(ids.size()); }
};

} // namespace kt
