// Byte-level BPE training (Sennrich et al. 2016, on bytes as in GPT-2).
//
//  1. Pre-tokenize every document and count the distinct words (byte_level.h). BPE never
//     merges across a word boundary, so a word seen 10,000 times is processed once, weighted.
//  2. Each distinct word starts as its bytes (ids 3..258). Count every adjacent pair of
//     symbols, weighted by the word's count, and remember which words hold each pair.
//  3. Repeat until the vocabulary is full: take the most frequent pair (a, b); on a tie the
//     smallest (a, b) by id, i.e. bytes before merged tokens and earlier merges first, which
//     makes the result independent of hash-table order. It becomes token z (a new id, or the
//     id of an existing token with the same bytes). Rewrite only the words that hold (a, b),
//     and update the pair counts around each occurrence instead of recounting:
//         ... x a b y ...  ->  ... x z y ...
//         count(a,b) -= c, count(x,a) -= c, count(b,y) -= c, count(x,z) += c, count(z,y) += c
//     (c = the word's count; x is the already-rewritten left neighbour, so runs like a b a b
//     come out right). A max-heap of (count, pair) finds the next best pair; entries whose
//     count has changed since they were pushed are skipped when popped.
#include <algorithm>
#include <queue>
#include <string_view>
#include <unordered_map>

#include "reference/io/bpe.h"
#include "reference/io/byte_level.h"

namespace dsv3::io {
namespace {

constexpr int32_t kFirstByteId = 3;

uint64_t key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t left_of(uint64_t k) {
  return static_cast<int32_t>(k >> 32);
}
int32_t right_of(uint64_t k) {
  return static_cast<int32_t>(k & 0xFFFFFFFFu);
}

// The distinct words as symbol sequences in one flat array; merging shrinks a word in place.
struct Words {
  std::vector<int32_t> symbols;
  std::vector<int64_t> begin;
  std::vector<int32_t> length;
  std::vector<int64_t> count;
};

struct HeapEntry {
  int64_t count;
  uint64_t pair;
  // Max-heap order: higher count first, then the smaller pair (left id, then right id).
  bool operator<(const HeapEntry& o) const {
    return count != o.count ? count < o.count : pair > o.pair;
  }
};

class Trainer {
 public:
  explicit Trainer(Words w) : w_(std::move(w)), stamp_(w_.count.size(), 0) {
    for (int32_t i = 0; i < static_cast<int32_t>(w_.count.size()); ++i) {
      const int32_t* s = &w_.symbols[w_.begin[i]];
      for (int32_t k = 0; k + 1 < w_.length[i]; ++k) add(key(s[k], s[k + 1]), w_.count[i], i);
    }
    for (const auto& [p, c] : count_) heap_.push({c, p});
    touched_.clear();
  }

  // The best pair and its count, or count 0 when no pair is left.
  HeapEntry best() {
    while (!heap_.empty()) {
      HeapEntry e = heap_.top();
      auto it = count_.find(e.pair);
      if (it != count_.end() && it->second == e.count && e.count > 0) return e;
      heap_.pop();  // stale: the pair's count changed after this entry was pushed
    }
    return {0, 0};
  }

  // Replaces every occurrence of `pair` by z and updates the counts around it.
  void merge(uint64_t pair, int32_t z) {
    const int32_t a = left_of(pair), b = right_of(pair);
    ++generation_;
    std::vector<int32_t> holders = std::move(where_[pair]);
    where_.erase(pair);
    for (int32_t wi : holders) {
      if (stamp_[wi] == generation_) continue;  // listed twice
      stamp_[wi] = generation_;
      int32_t* s = &w_.symbols[w_.begin[wi]];
      const int32_t n = w_.length[wi];
      const int64_t c = w_.count[wi];
      int32_t o = 0;
      for (int32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
          add(pair, -c, wi);
          if (o > 0) {
            add(key(s[o - 1], a), -c, wi);
            add(key(s[o - 1], z), c, wi);
          }
          if (i + 2 < n) {
            add(key(b, s[i + 2]), -c, wi);
            add(key(z, s[i + 2]), c, wi);
          }
          s[o++] = z;
          i += 2;
        } else {
          s[o++] = s[i++];
        }
      }
      w_.length[wi] = o;
    }
    count_.erase(pair);
    // Push each changed pair once, with its final count.
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    for (uint64_t p : touched_) {
      auto it = count_.find(p);
      if (it == count_.end()) continue;
      if (it->second > 0)
        heap_.push({it->second, p});
      else
        count_.erase(it);
    }
    touched_.clear();
  }

 private:
  void add(uint64_t p, int64_t delta, int32_t word) {
    count_[p] += delta;
    if (delta > 0) where_[p].push_back(word);
    touched_.push_back(p);
  }

  Words w_;
  std::unordered_map<uint64_t, int64_t> count_;
  std::unordered_map<uint64_t, std::vector<int32_t>> where_;
  std::priority_queue<HeapEntry> heap_;
  std::vector<uint64_t> touched_;
  std::vector<int32_t> stamp_;
  int32_t generation_ = 0;
};

}  // namespace

BpeTrainResult train_bpe(const std::vector<std::string_view>& documents,
                         const BpeTrainOptions& options) {
  const int64_t base = kFirstByteId + 256;
  if (options.vocab_size < base)
    throw std::invalid_argument("BPE vocabulary size must be at least 259 (3 specials, 256 bytes)");

  // 1. Distinct words and their counts.
  std::unordered_map<std::string_view, int64_t> counts;
  int64_t n_words = 0, n_bytes = 0;
  for (std::string_view doc : documents) {
    n_bytes += static_cast<int64_t>(doc.size());
    for_each_pretoken(doc, [&](std::string_view word) {
      ++counts[word];
      ++n_words;
    });
  }

  // 2. Words of two bytes or more as byte ids (one-byte words hold no pair).
  Words words;
  for (const auto& [text, c] : counts) {
    if (text.size() < 2) continue;
    words.begin.push_back(static_cast<int64_t>(words.symbols.size()));
    words.length.push_back(static_cast<int32_t>(text.size()));
    words.count.push_back(c);
    for (unsigned char ch : text) words.symbols.push_back(kFirstByteId + ch);
  }
  Trainer trainer(std::move(words));

  // 3. Merge until the vocabulary is full (or no pair is frequent enough).
  std::vector<std::string> token_bytes(base);
  std::unordered_map<std::string, int32_t> id_of;
  for (int b = 0; b < 256; ++b) {
    token_bytes[kFirstByteId + b] = std::string(1, static_cast<char>(b));
    id_of[token_bytes[kFirstByteId + b]] = kFirstByteId + b;
  }
  std::vector<std::pair<int32_t, int32_t>> merges;
  const int64_t wanted = options.vocab_size - base;
  int64_t vocab = base;
  while (vocab < options.vocab_size) {
    const HeapEntry e = trainer.best();
    if (e.count < std::max<int64_t>(options.min_frequency, 1)) break;
    const int32_t a = left_of(e.pair), b = right_of(e.pair);
    std::string joined = token_bytes[a] + token_bytes[b];
    auto [it, fresh] = id_of.emplace(joined, static_cast<int32_t>(token_bytes.size()));
    if (fresh) {
      token_bytes.push_back(joined);
      ++vocab;
    }
    merges.emplace_back(a, b);
    trainer.merge(e.pair, it->second);
    if (options.progress && (vocab - base) % options.progress_every == 0 && fresh)
      options.progress(vocab - base, wanted);
  }
  if (options.progress) options.progress(vocab - base, wanted);

  BpeTrainResult r{BpeTokenizer::from_merges(merges), n_words, static_cast<int64_t>(counts.size()),
                   n_bytes};
  return r;
}

}  // namespace dsv3::io
