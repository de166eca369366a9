// Tokenizers. Every model has one: a checkpoint folder with a Hugging Face `tokenizer.json`
// (byte-level BPE, like DeepSeek-V3's) uses it; everything else uses the byte tokenizer of the
// built-in demo models (id 0 BOS, 1 EOS, 2 PAD, byte b -> b + 3).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dsv3::io {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Text to ids; BOS first when add_bos. Never fails: every byte sequence has an encoding.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos = true) const = 0;
  // Ids to text; special tokens (BOS, EOS, PAD) produce nothing, unknown ids print as <id>.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // One token as readable text: printable bytes as themselves, others escaped (\n, <0x07>,
  // <BOS>); a space shows as ␣.
  virtual std::string piece(int32_t id) const = 0;
  // The number of ids it can produce (ids are below this).
  virtual int64_t vocab_size() const = 0;
  virtual int32_t bos() const = 0;
  virtual int32_t eos() const = 0;
  // "byte" or "byte-level BPE, 2048 tokens": shown by `info` and the explorer.
  virtual std::string describe() const = 0;
};

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kBos = 0, kEos = 1, kPad = 2, kByteOffset = 3;
  static constexpr int64_t kMinVocab = 256 + kByteOffset;

  std::vector<int32_t> encode(std::string_view text, bool add_bos = true) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  std::string piece(int32_t id) const override;
  int64_t vocab_size() const override { return kMinVocab; }
  int32_t bos() const override { return kBos; }
  int32_t eos() const override { return kEos; }
  std::string describe() const override { return "byte"; }
};

// The tokenizer of a model: `dir`/tokenizer.json when `dir` is a folder that has one,
// otherwise the byte tokenizer. Throws FormatError for a tokenizer.json it cannot read.
std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& dir);

// Parses "3,17,5" (spaces allowed) into ids; throws std::invalid_argument naming the bad entry.
std::vector<int32_t> parse_ids(std::string_view list);

}  // namespace dsv3::io
