#include "runtime/tokenizer/Tokenizer.h"
#include "runtime/tokenizer/Utf8.h"

namespace kt::tok {
namespace {

// The window is cut back to its last kKeep ids once it reaches kMaxWindow, so each push decodes a
// bounded number of tokens instead of the whole generation.
constexpr size_t kMaxWindow = 64;
constexpr size_t kKeep = 8;

size_t withoutTrailingReplacement(const std::string& text) {
  size_t n = text.size();
  while (n >= 3 && text.compare(n - 3, 3, utf8::kReplacementUtf8) == 0)
    n -= 3;
  return n;
}

} // namespace

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skipSpecial)
    : tok_(tokenizer), skipSpecial_(skipSpecial) {}

bool StreamDecoder::isSkipped(int32_t id) const {
  return !tok_.isKnownId(id) || (skipSpecial_ && tok_.isSpecial(id));
}

bool StreamDecoder::isHeldByte(int32_t id) const {
  return tok_.isByteFallbackToken(id);
}

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  // A trailing run of <0xNN> tokens is decoded as a whole by HF (valid UTF-8 or one U+FFFD per
  // byte), so nothing of it is final until a normal token ends the run. Dropped ids do not end it.
  size_t hold = ids_.size();
  for (size_t k = ids_.size(); k > 0; --k) {
    int32_t t = ids_[k - 1];
    if (isSkipped(t))
      continue;
    if (!isHeldByte(t))
      break;
    hold = k - 1;
  }
  std::string text = tok_.decodeRange(ids_.data(), hold, skipSpecial_);
  // Trailing U+FFFD may be an unfinished character of byte-level BPE: hold it as well.
  size_t stable = withoutTrailingReplacement(text);
  std::string out;
  if (stable > emitted_) {
    out = text.substr(emitted_, stable - emitted_);
    emitted_ = stable;
  }
  if (hold == ids_.size() && stable == text.size())
    compact();
  return out;
}

void StreamDecoder::compact() {
  if (ids_.size() < kMaxWindow)
    return;
  // The new window must start at a token whose text cannot merge with what precedes it: a real
  // token (not dropped, not a byte-fallback byte). Its decode then differs from the old window's
  // only at the front, and future pushes only append, so diffs against it stay exact.
  size_t j = ids_.size() - kKeep;
  while (j > 0 && (isSkipped(ids_[j]) || isHeldByte(ids_[j])))
    --j;
  if (j == 0)
    return;
  std::vector<int32_t> tail(ids_.begin() + static_cast<std::ptrdiff_t>(j), ids_.end());
  std::string text = tok_.decodeRange(tail.data(), tail.size(), skipSpecial_);
  if (withoutTrailingReplacement(text) != text.size())
    return;
  ids_.swap(tail);
  emitted_ = text.size();
}

std::string StreamDecoder::flush() {
  std::string text = tok_.decodeRange(ids_.data(), ids_.size(), skipSpecial_);
  std::string out = text.size() > emitted_ ? text.substr(emitted_) : std::string();
  ids_.clear();
  emitted_ = 0;
  return out;
}

} // namespace kt::tok
