// A byte-level BPE tokenizer, the kind GPT-2 and DeepSeek-V3 use: text is cut into words by
// the byte-level pre-tokenizer (byte_level.h), each word starts as its bytes, and learned
// merges join adjacent tokens, lowest merge rank first. There is no unknown token: every byte
// is a token, so every byte sequence, valid UTF-8 or not, encodes and decodes back exactly.
//
// Id layout of the tokenizers trained here (the byte tokenizer's ids, extended):
//   0 BOS <｜begin▁of▁sentence｜>, 1 EOS <｜end▁of▁sentence｜>, 2 PAD <｜▁pad▁｜>
//   3..258 the 256 bytes (byte b -> id b + 3)
//   259..  the merged tokens in the order they were learned
// A tokenizer.json read from elsewhere keeps its own ids.
//
// Stored as a Hugging Face `tokenizers` tokenizer.json (model type BPE, ByteLevel
// pre-tokenizer and decoder); docs/tokenizer.md describes the file and the training.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "reference/io/tokenizer.h"

namespace dsv3::io {

// DeepSeek-V3's special-token spellings (the bars are U+FF5C, the blanks U+2581).
inline constexpr std::string_view kBosText = "<｜begin▁of▁sentence｜>";
inline constexpr std::string_view kEosText = "<｜end▁of▁sentence｜>";
inline constexpr std::string_view kPadText = "<｜▁pad▁｜>";

class BpeTokenizer final : public Tokenizer {
 public:
  struct Merge {
    int32_t left, right, result;  // ids; result is the token left+right stands for
  };
  struct Special {
    int32_t id;
    std::string content;
  };

  // A tokenizer in this project's id layout from merges in rank order (left and right are
  // ids of earlier tokens; the result ids are assigned here: a new id for a new string, the
  // existing id when two merges spell the same string).
  static BpeTokenizer from_merges(const std::vector<std::pair<int32_t, int32_t>>& merges);

  // Parses a tokenizer.json; `source` names the file in errors (FormatError). Encoding is
  // enabled only for what this code reproduces exactly (ByteLevel pre-tokenizer with its
  // regex, no normalizer); otherwise encode() throws std::runtime_error naming the reason,
  // and decode() still works.
  static BpeTokenizer from_json(std::string_view json_text, const std::string& source);
  // Reads the file (from_json), then finds BOS and EOS: DeepSeek's spellings among the added
  // tokens, else bos_token/eos_token of a tokenizer_config.json beside it, else
  // bos_token_id/eos_token_id of a config.json beside it; FormatError when none names them.
  static BpeTokenizer load(const std::string& path);
  std::string to_json() const;               // deterministic bytes
  void save(const std::string& path) const;  // throws FormatError on I/O failure

  std::vector<int32_t> encode(std::string_view text, bool add_bos = true) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string piece(int32_t id) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(tokens_.size()); }
  int32_t bos() const override { return bos_; }
  int32_t eos() const override { return eos_; }
  std::string describe() const override;

  // Encodes one pre-tokenized word (no BOS), appending to `out`.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  // The bytes token `id` stands for ("" for special and unused ids).
  const std::string& bytes(int32_t id) const;
  const std::vector<Merge>& merges() const { return merges_; }
  // Empty when encode() works; otherwise why it does not.
  const std::string& encode_unsupported() const { return unsupported_; }

  BpeTokenizer(BpeTokenizer&&) = default;
  BpeTokenizer& operator=(BpeTokenizer&&) = default;

 private:
  BpeTokenizer();
  void index_merges();
  static BpeTokenizer from_parsed(const nlohmann::json& j, const std::string& source);
  void find_special_tokens(const std::string& path);
  int32_t id_of_added(std::string_view content) const;

  struct Token {
    std::string bytes;     // what it decodes to
    std::string text;      // the vocabulary string (byte-level spelling, or a special's content)
    bool special = false;  // decodes to nothing
    bool used = false;     // the id exists in the file
  };
  std::vector<Token> tokens_;           // by id
  std::vector<Merge> merges_;           // by rank
  std::vector<Special> added_;          // added_tokens as written
  std::array<int32_t, 256> byte_id_{};  // byte -> id of its one-byte token (-1: none)
  // (left << 32 | right) -> rank, for encoding.
  std::unordered_map<uint64_t, int32_t> rank_;
  int32_t bos_ = 0, eos_ = 1;
  std::string unsupported_;

  // Words seen before -> their ids. Encoding a corpus meets the same words again and again.
  struct Cache {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>> words;
  };
  std::unique_ptr<Cache> cache_;
};

// ---- training ----

struct BpeTrainOptions {
  int64_t vocab_size = 4096;  // including the 3 specials and 256 bytes
  int64_t min_frequency = 2;  // stop when the best pair occurs fewer times than this
  // Called every `progress_every` merges and at the end with (merges done, merges wanted).
  std::function<void(int64_t, int64_t)> progress;
  int64_t progress_every = 64;
};

struct BpeTrainResult {
  BpeTokenizer tokenizer;
  int64_t words = 0;         // pre-tokens counted
  int64_t unique_words = 0;  // distinct pre-tokens
  int64_t bytes = 0;         // bytes of training text
};

// Learns merges on `documents` (each pre-tokenized on its own; no word crosses a document
// boundary). Deterministic: the same documents give the same merges and the same file.
// Algorithm and tie-break: see bpe_train.cpp.
BpeTrainResult train_bpe(const std::vector<std::string_view>& documents,
                         const BpeTrainOptions& options);

}  // namespace dsv3::io
