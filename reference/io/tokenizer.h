// Byte-level tokenizer for the built-in demo models: id 0 BOS, 1 EOS, 2 PAD, byte b -> b + 3.
// Any vocabulary of at least 259 entries can encode every string; ids beyond 258 print as <id>.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dsv3::io {

class ByteTokenizer {
 public:
  static constexpr int32_t kBos = 0, kEos = 1, kPad = 2, kByteOffset = 3;
  static constexpr int64_t kMinVocab = 256 + kByteOffset;

  std::vector<int32_t> encode(std::string_view text, bool add_bos = true) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  // One token as readable text: printable bytes as themselves, others escaped (\n, <0x07>, <BOS>).
  std::string piece(int32_t id) const;
};

// Parses "3,17,5" (spaces allowed) into ids; throws std::invalid_argument naming the bad entry.
std::vector<int32_t> parse_ids(std::string_view list);

}  // namespace dsv3::io
