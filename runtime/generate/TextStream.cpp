#include "runtime/generate/TextStream.h"

#include <algorithm>

namespace kt {

TextStream::TextStream(const tok::Tokenizer& tok, const std::vector<int32_t>& prompt,
                       std::vector<std::string> stops, std::function<void(const std::string&)> emit)
    : dec_(tok, /*skipSpecial=*/true), stops_(std::move(stops)), emit_(std::move(emit)) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
  for (int32_t id : prompt)
    dec_.push(id);
}

bool TextStream::push(int32_t id) {
  pending_ += dec_.push(id);
  return drain(false);
}

void TextStream::finish() {
  pending_ += dec_.flush();
  drain(true);
}

bool TextStream::drain(bool all) {
  if (stopped_) {
    pending_.clear();
    return false;
  }
  for (const std::string& s : stops_) {
    auto at = pending_.find(s);
    if (at != std::string::npos) {
      emit(pending_.substr(0, at));
      pending_.clear();
      stopped_ = true;
      return false;
    }
  }
  // Hold back a tail that could still grow into a stop string.
  size_t hold = 0;
  if (!all)
    for (const std::string& s : stops_)
      for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k)
        if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
  emit(pending_.substr(0, pending_.size() - hold));
  pending_.erase(0, pending_.size() - hold);
  return true;
}

void TextStream::emit(const std::string& s) {
  if (s.empty())
    return;
  text_ += s;
  if (emit_)
    emit_(s);
}

} // namespace kt
