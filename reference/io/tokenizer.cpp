#include "reference/io/tokenizer.h"

#include <fmt/format.h>

#include <charconv>
#include <filesystem>
#include <stdexcept>

#include "reference/io/bpe.h"

namespace dsv3::io {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> ids;
  if (add_bos) ids.push_back(kBos);
  for (unsigned char c : text) ids.push_back(static_cast<int32_t>(c) + kByteOffset);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id >= kByteOffset && id < kByteOffset + 256)
      out += static_cast<char>(id - kByteOffset);
    else if (id >= kByteOffset + 256)
      out += fmt::format("<{}>", id);
  }
  return out;
}

std::string ByteTokenizer::piece(int32_t id) const {
  if (id == kBos) return "<BOS>";
  if (id == kEos) return "<EOS>";
  if (id == kPad) return "<PAD>";
  if (id < 0 || id >= kByteOffset + 256) return fmt::format("<{}>", id);
  unsigned char c = static_cast<unsigned char>(id - kByteOffset);
  if (c == '\n') return "\\n";
  if (c == '\t') return "\\t";
  if (c == ' ') return "␣";
  if (c >= 0x20 && c < 0x7F) return std::string(1, static_cast<char>(c));
  return fmt::format("<0x{:02X}>", c);
}

std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path file = fs::path(dir) / "tokenizer.json";
  if (!dir.empty() && fs::is_regular_file(file, ec))
    return std::make_shared<BpeTokenizer>(BpeTokenizer::load(file.string()));
  return std::make_shared<ByteTokenizer>();
}

std::vector<int32_t> parse_ids(std::string_view list) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i <= list.size()) {
    size_t j = list.find(',', i);
    if (j == std::string_view::npos) j = list.size();
    std::string_view item = list.substr(i, j - i);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size() || v < 0 ||
        v > INT32_MAX)
      throw std::invalid_argument(
          fmt::format("token id list: '{}' is not a non-negative integer", item));
    ids.push_back(static_cast<int32_t>(v));
    i = j + 1;
  }
  return ids;
}

}  // namespace dsv3::io
