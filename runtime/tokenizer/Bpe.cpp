#include "runtime/tokenizer/Bpe.h"

#include <cstdio>
#include <queue>

#include "runtime/tokenizer/Utf8.h"

namespace kt::tok {
namespace {

constexpr uint64_t kEmptyKey = ~0ULL;

// Words at least this long are cut into independently mergeable pieces first (see joinable_).
constexpr size_t kSegmentMinBytes = 64;

char32_t firstCp(const std::string& s) {
  size_t i = 0;
  return utf8::next(s, i);
}
char32_t lastCp(const std::string& s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80)
    --i;
  return utf8::next(s, i);
}
uint64_t cpPairKey(char32_t a, char32_t b) {
  return (static_cast<uint64_t>(a) << 32) | b;
}

// Above this many symbols the heap-based merge loop beats rescanning all pairs each step. Both
// loops apply the same merges in the same order, so the threshold never changes the result.
constexpr size_t kSmallWord = 48;

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

} // namespace

void BpeModel::PairMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2)
    cap <<= 1;
  keys_.assign(cap, kEmptyKey);
  values_.assign(cap, MergeValue{0, 0});
  mask_ = cap - 1;
  size_ = 0;
}

void BpeModel::PairMap::insert(uint64_t key, MergeValue v) {
  if ((size_ + 1) * 2 > keys_.size()) {
    std::vector<uint64_t> oldKeys;
    std::vector<MergeValue> oldValues;
    oldKeys.swap(keys_);
    oldValues.swap(values_);
    reserve(oldKeys.size());
    for (size_t i = 0; i < oldKeys.size(); ++i)
      if (oldKeys[i] != kEmptyKey)
        insert(oldKeys[i], oldValues[i]);
  }
  size_t i = mix(key) & mask_;
  while (keys_[i] != kEmptyKey && keys_[i] != key)
    i = (i + 1) & mask_;
  if (keys_[i] == kEmptyKey)
    ++size_;
  keys_[i] = key;
  values_[i] = v;
}

const BpeModel::MergeValue* BpeModel::PairMap::find(uint64_t key) const {
  if (keys_.empty())
    return nullptr;
  size_t i = mix(key) & mask_;
  while (true) {
    if (keys_[i] == key)
      return &values_[i];
    if (keys_[i] == kEmptyKey)
      return nullptr;
    i = (i + 1) & mask_;
  }
}

std::unique_ptr<BpeModel> BpeModel::parse(const json& j, const std::string& path) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  std::string type = optString(j, "type", "BPE", path);
  if (type != "BPE")
    throw ParseError(joinPath(path, "type"), "unsupported model '" + type + "' (only BPE)");

  const json& vocab = member(j, "vocab", path);
  std::string vp = joinPath(path, "vocab");
  if (!vocab.is_object())
    throw ParseError(vp, "expected an object of token -> id");
  long long maxId = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    long long id = asInt(it.value(), vp + "[\"" + it.key() + "\"]");
    if (id < 0 || id > INT32_MAX)
      throw ParseError(vp + "[\"" + it.key() + "\"]", "id out of range");
    maxId = std::max(maxId, id);
  }
  m->idToToken_.assign(static_cast<size_t>(maxId + 1), std::string());
  m->hasId_.assign(static_cast<size_t>(maxId + 1), false);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    size_t id = it.value().get<size_t>();
    m->idToToken_[id] = it.key();
    m->hasId_[id] = true;
  }
  // The views point into idToToken_, which is never resized after this point.
  m->vocab_.reserve(vocab.size());
  for (size_t id = 0; id < m->idToToken_.size(); ++id)
    if (m->hasId_[id])
      m->vocab_.emplace(m->idToToken_[id], static_cast<int32_t>(id));

  m->byteFallback_ = optBool(j, "byte_fallback", false, path);
  m->fuseUnk_ = optBool(j, "fuse_unk", false, path);
  m->ignoreMerges_ = optBool(j, "ignore_merges", false, path);
  m->prefix_ = optString(j, "continuing_subword_prefix", "", path);
  m->suffix_ = optString(j, "end_of_word_suffix", "", path);
  std::string unk = optString(j, "unk_token", "", path);
  if (!unk.empty())
    m->unkId_ = m->tokenToId(unk);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    m->byteIds_[b] = m->tokenToId(name);
  }

  const json& merges = member(j, "merges", path);
  std::string mp = joinPath(path, "merges");
  if (!merges.is_array())
    throw ParseError(mp, "expected an array");
  m->merges_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& e = merges[i];
    std::string a, b;
    if (e.is_string()) {
      // Legacy "left right" form: exactly one separating space.
      const std::string& s = e.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        throw ParseError(indexPath(mp, i), "expected \"left right\", got \"" + s + "\"");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      throw ParseError(indexPath(mp, i), "expected a string or pair");
    }
    int32_t ia = m->tokenToId(a), ib = m->tokenToId(b);
    if (ia < 0)
      throw ParseError(indexPath(mp, i), "token '" + a + "' is not in the vocab");
    if (ib < 0)
      throw ParseError(indexPath(mp, i), "token '" + b + "' is not in the vocab");
    std::string merged = a;
    if (!m->prefix_.empty() && b.compare(0, m->prefix_.size(), m->prefix_) == 0)
      merged += b.substr(m->prefix_.size());
    else
      merged += b;
    int32_t in = m->tokenToId(merged);
    if (in < 0)
      throw ParseError(indexPath(mp, i), "merged token '" + merged + "' is not in the vocab");
    m->merges_.insert(pairKey(ia, ib), MergeValue{static_cast<int32_t>(i), in});
    if (!a.empty() && !b.empty())
      m->joinable_.insert(cpPairKey(lastCp(a), firstCp(b)), {0, 0});
  }
  // Vocabulary strings come from JSON and are valid UTF-8; single-character ones are the symbols
  // words start from.
  for (size_t id = 0; id < m->idToToken_.size(); ++id) {
    const std::string& t = m->idToToken_[id];
    if (!m->hasId_[id] || t.empty() || utf8::seqLen(static_cast<unsigned char>(t[0])) != t.size())
      continue;
    m->charIds_.emplace(firstCp(t), static_cast<int32_t>(id));
  }
  m->canSegment_ = m->prefix_.empty() && m->suffix_.empty();
  return m;
}

int32_t BpeModel::tokenToId(std::string_view token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::idToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= idToToken_.size() || !hasId_[id])
    return nullptr;
  return &idToToken_[id];
}

void BpeModel::initialSymbols(std::string_view word, std::vector<int32_t>& syms) const {
  syms.clear();
  int32_t pendingUnk = -1; // fused run of unknown characters waiting to be emitted
  std::string scratch;
  size_t i = 0;
  while (i < word.size()) {
    size_t len = utf8::seqLen(static_cast<unsigned char>(word[i]));
    std::string_view ch = word.substr(i, len);
    bool first = i == 0, last = i + len >= word.size();
    i += len;
    std::string_view key = ch;
    if ((!first && !prefix_.empty()) || (last && !suffix_.empty())) {
      scratch.clear();
      if (!first)
        scratch += prefix_;
      scratch.append(ch.data(), ch.size());
      if (last)
        scratch += suffix_;
      key = scratch;
    }
    int32_t id = tokenToId(key);
    if (id >= 0) {
      if (pendingUnk >= 0) {
        syms.push_back(pendingUnk);
        pendingUnk = -1;
      }
      syms.push_back(id);
      continue;
    }
    if (byteFallback_) {
      bool all = true;
      for (unsigned char c : key)
        all = all && byteIds_[c] >= 0;
      if (all) {
        for (unsigned char c : key)
          syms.push_back(byteIds_[c]);
        continue;
      }
    }
    if (unkId_ >= 0) {
      if (pendingUnk >= 0 && !fuseUnk_)
        syms.push_back(pendingUnk);
      pendingUnk = unkId_;
    }
    // With neither fallback nor unk token the character is dropped, as HF does.
  }
  if (pendingUnk >= 0)
    syms.push_back(pendingUnk);
}

void BpeModel::mergeSmall(std::vector<int32_t>& syms) const {
  while (syms.size() > 1) {
    int32_t bestRank = INT32_MAX, bestId = -1;
    size_t bestPos = 0;
    for (size_t k = 0; k + 1 < syms.size(); ++k) {
      const MergeValue* mv = merges_.find(pairKey(syms[k], syms[k + 1]));
      if (mv && mv->rank < bestRank) {
        bestRank = mv->rank;
        bestId = mv->newId;
        bestPos = k;
      }
    }
    if (bestId < 0)
      break;
    syms[bestPos] = bestId;
    syms.erase(syms.begin() + bestPos + 1);
  }
}

void BpeModel::mergeLarge(std::vector<int32_t>& syms) const {
  // Doubly linked symbols plus a min-heap of candidate merges keyed by (rank, position); entries
  // made stale by earlier merges are detected and skipped when popped.
  const int n = static_cast<int>(syms.size());
  std::vector<int> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int k = 0; k < n; ++k) {
    prev[k] = k - 1;
    next[k] = k + 1 < n ? k + 1 : -1;
  }
  struct Cand {
    int32_t rank;
    int pos;
    int32_t newId;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int pos) {
    int nx = next[pos];
    if (nx < 0)
      return;
    if (const MergeValue* mv = merges_.find(pairKey(syms[pos], syms[nx])))
      heap.push({mv->rank, pos, mv->newId});
  };
  for (int k = 0; k + 1 < n; ++k)
    push(k);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    if (!alive[c.pos])
      continue;
    int nx = next[c.pos];
    if (nx < 0)
      continue;
    const MergeValue* mv = merges_.find(pairKey(syms[c.pos], syms[nx]));
    if (!mv || mv->newId != c.newId)
      continue;
    syms[c.pos] = c.newId;
    alive[nx] = false;
    next[c.pos] = next[nx];
    if (next[nx] >= 0)
      prev[next[nx]] = c.pos;
    if (prev[c.pos] >= 0)
      push(prev[c.pos]);
    push(c.pos);
  }
  size_t out = 0;
  for (int k = 0; k < n; ++k)
    if (alive[k])
      syms[out++] = syms[k];
  syms.resize(out);
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty())
    return;
  if (ignoreMerges_) {
    int32_t id = tokenToId(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (!canSegment_ || word.size() < kSegmentMinBytes) {
    tokenizeSegment(word, out);
    return;
  }
  size_t segStart = 0, i = 0;
  char32_t prev = 0;
  bool prevPlain = false;
  while (i < word.size()) {
    size_t at = i;
    char32_t cp = utf8::next(word, i);
    // Characters that are not tokens themselves (byte fallback, unk) never start a cut.
    bool plain = charIds_.count(cp) != 0;
    if (at > segStart && prevPlain && plain && !joinable_.find(cpPairKey(prev, cp))) {
      tokenizeSegment(word.substr(segStart, at - segStart), out);
      segStart = at;
    }
    prev = cp;
    prevPlain = plain;
  }
  tokenizeSegment(word.substr(segStart), out);
}

void BpeModel::tokenizeSegment(std::string_view word, std::vector<int32_t>& out) const {
  const bool cacheable = word.size() < kCacheMaxWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word.data(), word.size());
    std::lock_guard<std::mutex> lock(cacheMutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> syms;
  initialSymbols(word, syms);
  if (syms.size() <= kSmallWord)
    mergeSmall(syms);
  else
    mergeLarge(syms);
  out.insert(out.end(), syms.begin(), syms.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cacheMutex_);
    // A full cache is simply restarted: cheap, and keeps the words of the current text hot.
    if (cache_.size() >= kCacheCapacity)
      cache_.clear();
    cache_.emplace(std::move(key), std::move(syms));
  }
}

} // namespace kt::tok
