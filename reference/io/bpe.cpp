#include "reference/io/bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <stdexcept>

#include "reference/io/byte_level.h"
#include "reference/io/safetensors.h"

namespace dsv3::io {
namespace {

using nlohmann::json;
using ordered_json = nlohmann::ordered_json;

constexpr int32_t kBytesBase = 3;        // byte b -> id b + 3 in our layout
constexpr int64_t kMaxId = 1 << 24;      // larger ids in a file are treated as corrupt
constexpr size_t kCacheLimit = 1 << 20;  // words kept by the encode cache

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(fmt::format("{}: cannot read the file", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The post-processor of the files written here: BOS before a sequence, as encode(text, true)
// does, so that Hugging Face's encode(text) and ours agree (add_special_tokens=False, ours
// with add_bos=false).
ordered_json bos_template(const std::string& bos, int32_t id) {
  const auto special = [&] {
    return ordered_json{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}};
  };
  const auto seq = [](const char* name, int type) {
    return ordered_json{{"Sequence", {{"id", name}, {"type_id", type}}}};
  };
  return ordered_json{
      {"type", "TemplateProcessing"},
      {"single", ordered_json::array({special(), seq("A", 0)})},
      {"pair", ordered_json::array({special(), seq("A", 0), special(), seq("B", 1)})},
      {"special_tokens",
       {{bos, {{"id", bos}, {"ids", ordered_json::array({id})}, {"tokens", {bos}}}}}}};
}

ordered_json byte_level(bool add_prefix_space) {
  return ordered_json{{"type", "ByteLevel"},
                      {"add_prefix_space", add_prefix_space},
                      {"trim_offsets", true},
                      {"use_regex", true}};
}

// Why a pre-tokenizer / normalizer / model option keeps encode() from reproducing the file's
// own tokenizer exactly; "" when it does not.
std::string check_pre_tokenizer(const json& pre, bool& add_prefix_space) {
  add_prefix_space = false;
  if (pre.is_null()) return "no pre_tokenizer (byte-level BPE needs the ByteLevel one)";
  const std::string type = pre.value("type", std::string("?"));
  if (type != "ByteLevel") {
    std::string parts;
    if (type == "Sequence" && pre.contains("pretokenizers"))
      for (const json& p : pre["pretokenizers"])
        parts += (parts.empty() ? "" : ", ") + p.value("type", std::string("?"));
    return fmt::format(
        "the pre_tokenizer {}{} is not supported (only ByteLevel with its GPT-2 "
        "regex); decoding works, encoding does not",
        type, parts.empty() ? "" : "[" + parts + "]");
  }
  if (!pre.value("use_regex", true))
    return "the ByteLevel pre_tokenizer without its regex (use_regex=false) is not supported";
  add_prefix_space = pre.value("add_prefix_space", false);
  return "";
}

}  // namespace

BpeTokenizer::BpeTokenizer() : cache_(std::make_unique<Cache>()) {
  byte_id_.fill(-1);
}

BpeTokenizer BpeTokenizer::from_merges(const std::vector<std::pair<int32_t, int32_t>>& merges) {
  BpeTokenizer t;
  t.added_ = {{0, std::string(kBosText)}, {1, std::string(kEosText)}, {2, std::string(kPadText)}};
  for (const Special& s : t.added_) t.tokens_.push_back({"", s.content, true, true});
  for (int b = 0; b < 256; ++b) {
    const std::string byte(1, static_cast<char>(b));
    t.tokens_.push_back({byte, bytes_to_unicode(byte), false, true});
    t.byte_id_[b] = kBytesBase + b;
  }
  std::unordered_map<std::string, int32_t> by_bytes;
  for (int32_t id = kBytesBase; id < static_cast<int32_t>(t.tokens_.size()); ++id)
    by_bytes[t.tokens_[id].bytes] = id;
  for (auto [l, r] : merges) {
    if (l < kBytesBase || r < kBytesBase || l >= t.vocab_size() || r >= t.vocab_size())
      throw std::invalid_argument(fmt::format("merge ({}, {}) names an unknown token", l, r));
    std::string joined = t.tokens_[l].bytes + t.tokens_[r].bytes;
    auto [it, fresh] = by_bytes.emplace(joined, static_cast<int32_t>(t.tokens_.size()));
    if (fresh) t.tokens_.push_back({joined, bytes_to_unicode(joined), false, true});
    t.merges_.push_back({l, r, it->second});
  }
  t.index_merges();
  return t;
}

void BpeTokenizer::index_merges() {
  rank_.clear();
  rank_.reserve(merges_.size() * 2);
  // A pair listed twice keeps its first (lowest) rank, as Hugging Face does.
  for (size_t i = 0; i < merges_.size(); ++i)
    rank_.emplace(pair_key(merges_[i].left, merges_[i].right), static_cast<int32_t>(i));
}

// The checks and the tables behind from_json; nlohmann's own exceptions (a wrong value type)
// are turned into a FormatError by the caller.
BpeTokenizer BpeTokenizer::from_parsed(const nlohmann::json& j, const std::string& source) {
  const auto fail = [&](const std::string& what) {
    return FormatError(fmt::format("{}: {}", source, what));
  };
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    throw fail("no \"model\" object (not a Hugging Face tokenizer.json)");
  const json& m = j["model"];
  if (m.value("type", std::string("BPE")) != "BPE")
    throw fail(fmt::format("model type {} is not supported (only BPE)", m["type"].dump()));
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw fail("model.vocab is not an object");
  if (!m.contains("merges") || !m["merges"].is_array()) throw fail("model.merges is not a list");
  if (j.contains("decoder") && !j["decoder"].is_null() &&
      j["decoder"].value("type", std::string()) != "ByteLevel")
    throw fail(fmt::format("decoder {} is not supported (only ByteLevel)",
                           j["decoder"].value("type", std::string("?"))));

  BpeTokenizer t;
  t.tokens_.clear();
  std::unordered_map<std::string, int32_t> by_text;
  // The id table is as long as the largest id: a few tokens must not claim an id of 10^7 and
  // make it allocate a gigabyte. Gaps of unused ids are allowed, up to 65536 beyond the
  // number of tokens the file lists (DeepSeek-V3's ids are dense).
  const size_t listed =
      m["vocab"].size() +
      (j.contains("added_tokens") && j["added_tokens"].is_array() ? j["added_tokens"].size() : 0);
  const int64_t id_limit = std::min<int64_t>(kMaxId, static_cast<int64_t>(listed) + 65536);
  const auto put = [&](int64_t id, const std::string& text, bool special, const char* where) {
    if (id < 0 || id >= id_limit)
      throw fail(fmt::format("{} token {} has id {}, outside [0, {}) ({} tokens listed)", where,
                             json(text).dump(), id, id_limit, listed));
    if (id >= static_cast<int64_t>(t.tokens_.size())) t.tokens_.resize(id + 1);
    Token& tok = t.tokens_[id];
    if (tok.used && tok.text != text)
      throw fail(fmt::format("id {} is given to both {} and {}", id, json(tok.text).dump(),
                             json(text).dump()));
    if (!tok.used) {
      tok.text = text;
      tok.used = true;
      // A byte-level spelling decodes to its bytes; anything else (a special's content) to
      // its own UTF-8.
      if (!unicode_to_bytes(text, tok.bytes)) tok.bytes = text;
    }
    tok.special = tok.special || special;
    auto [it, fresh] = by_text.emplace(text, static_cast<int32_t>(id));
    if (!fresh && it->second != id)
      throw fail(fmt::format("{} token {} has two ids, {} and {}", where, json(text).dump(),
                             it->second, id));
  };
  for (const auto& [text, id] : m["vocab"].items()) {
    if (!id.is_number_integer())
      throw fail(fmt::format("model.vocab[{}] is not an integer id", json(text).dump()));
    put(id.get<int64_t>(), text, false, "vocab");
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          !a.contains("content") || !a["content"].is_string())
        throw fail("an added_tokens entry lacks an integer id or a string content");
      const std::string content = a["content"].get<std::string>();
      const int64_t id = a["id"].get<int64_t>();
      put(id, content, a.value("special", false), "added");
      t.added_.push_back({static_cast<int32_t>(id), content});
    }
  }

  // Merges: "left right" strings or [left, right] pairs, in rank order.
  const json& merges = m["merges"];
  t.merges_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const json& e = merges[r];
    std::string left, right;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        throw fail(
            fmt::format("merge {} ({}) is not two tokens separated by one space", r, e.dump()));
      left = s.substr(0, sp);
      right = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      left = e[0].get<std::string>();
      right = e[1].get<std::string>();
    } else {
      throw fail(fmt::format("merge {} ({}) is neither \"a b\" nor [\"a\", \"b\"]", r, e.dump()));
    }
    const auto id = [&](const std::string& text) {
      auto it = by_text.find(text);
      if (it == by_text.end())
        throw fail(fmt::format("merge {} ({}) names {}, which is not in the vocabulary", r,
                               e.dump(), json(text).dump()));
      return it->second;
    };
    t.merges_.push_back({id(left), id(right), id(left + right)});
  }
  t.index_merges();
  for (int b = 0; b < 256; ++b) {
    auto it = by_text.find(byte_to_unicode(static_cast<uint8_t>(b)));
    if (it != by_text.end()) t.byte_id_[b] = it->second;
  }

  // What encode() can reproduce.
  bool prefix = false;
  std::string why;
  if (j.contains("normalizer") && !j["normalizer"].is_null())
    why = fmt::format("the normalizer {} is not supported",
                      j["normalizer"].value("type", std::string("?")));
  if (why.empty()) why = check_pre_tokenizer(j.value("pre_tokenizer", json()), prefix);
  if (why.empty() && prefix) why = "ByteLevel add_prefix_space=true is not supported";
  if (why.empty() && !m.value("dropout", json()).is_null() && m["dropout"].get<double>() != 0.0)
    why = "BPE dropout is not supported";
  if (why.empty() && (!m.value("continuing_subword_prefix", json()).is_null() ||
                      !m.value("end_of_word_suffix", json()).is_null()))
    why = "continuing_subword_prefix / end_of_word_suffix are not supported";
  if (why.empty())
    for (int b = 0; b < 256; ++b)
      if (t.byte_id_[b] < 0) {
        why = fmt::format("byte 0x{:02X} has no token", b);
        break;
      }
  if (!why.empty()) t.unsupported_ = fmt::format("{}: cannot encode: {}", source, why);

  t.bos_ = t.id_of_added(kBosText);
  t.eos_ = t.id_of_added(kEosText);
  return t;
}

BpeTokenizer BpeTokenizer::from_json(std::string_view json_text, const std::string& source) {
  const auto fail = [&](const std::string& what) {
    return FormatError(fmt::format("{}: {}", source, what));
  };
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for 1e999
    throw fail(fmt::format("not valid JSON ({})", e.what()));
  }
  try {
    return from_parsed(j, source);
  } catch (const json::exception& e) {
    throw fail(fmt::format("unexpected JSON value ({})", e.what()));
  }
}

int32_t BpeTokenizer::id_of_added(std::string_view content) const {
  for (const Special& s : added_)
    if (s.content == content) return s.id;
  return -1;
}

// BOS/EOS of a checkpoint that does not use DeepSeek's spellings: the names in
// tokenizer_config.json (a string or {"content": ...}), else the ids in config.json.
void BpeTokenizer::find_special_tokens(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(path).parent_path();
  const auto read_json = [](const fs::path& p) {
    std::ifstream in(p);
    return in ? json::parse(in, nullptr, /*allow_exceptions=*/false) : json();
  };
  const json tc = read_json(dir / "tokenizer_config.json");
  const json cfg = read_json(dir / "config.json");
  const auto resolve = [&](int32_t& id, const char* name) {
    if (id >= 0) return;
    if (tc.is_object() && tc.contains(std::string(name) + "_token")) {
      const json& v = tc[std::string(name) + "_token"];
      const json content = v.is_object() ? v.value("content", json()) : v;
      if (content.is_string()) id = id_of_added(content.get<std::string>());
    }
    if (id < 0 && cfg.is_object() && cfg.contains(std::string(name) + "_token_id")) {
      json v = cfg[std::string(name) + "_token_id"];
      if (v.is_array() && !v.empty()) v = v[0];
      if (v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < vocab_size())
        id = v.get<int32_t>();
    }
    if (id < 0)
      throw FormatError(fmt::format(
          "{}: no {} token: none of the added tokens is {}, and no tokenizer_config.json or "
          "config.json beside it names one",
          path, name, json(std::string(name[0] == 'b' ? kBosText : kEosText)).dump()));
  };
  resolve(bos_, "bos");
  resolve(eos_, "eos");
}

BpeTokenizer BpeTokenizer::load(const std::string& path) {
  BpeTokenizer t = from_json(read_file(path), path);
  t.find_special_tokens(path);
  return t;
}

std::string BpeTokenizer::to_json() const {
  ordered_json added = ordered_json::array();
  for (const Special& s : added_)
    added.push_back({{"id", s.id},
                     {"content", s.content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  ordered_json vocab = ordered_json::object();
  for (size_t id = 0; id < tokens_.size(); ++id)
    if (tokens_[id].used) vocab[tokens_[id].text] = id;
  ordered_json merges = ordered_json::array();
  for (const Merge& m : merges_)
    merges.push_back(tokens_[m.left].text + " " + tokens_[m.right].text);
  ordered_json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level(false)},
      {"post_processor", bos_ >= 0 ? bos_template(tokens_[bos_].text, bos_) : ordered_json()},
      {"decoder", byte_level(true)},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"vocab", vocab},
        {"merges", merges}}}};
  return j.dump(2) + "\n";
}

void BpeTokenizer::save(const std::string& path) const {
  std::ofstream out(path, std::ios::binary);
  const std::string text = to_json();
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) throw FormatError(fmt::format("{}: cannot write the file", path));
}

// BPE on one word, Hugging Face's way: a heap of adjacent pairs ordered by (merge rank,
// position); pop the best, skip it if either side has changed since it was pushed, merge, and
// push the two new neighbour pairs. Same result as GPT-2's "merge the lowest-ranked pair
// everywhere, repeat", in O(n log n) instead of O(n^2) for long words (a CJK sentence with no
// spaces is one word).
void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  const int n = static_cast<int>(word.size());
  if (n == 1) {
    out.push_back(byte_id_[static_cast<unsigned char>(word[0])]);
    return;
  }
  std::vector<int32_t> id(n);
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    id[i] = byte_id_[static_cast<unsigned char>(word[i])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t result;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  const auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    auto it = rank_.find(pair_key(id[pos], id[next[pos]]));
    if (it != rank_.end()) heap.push({it->second, pos, merges_[it->second].result});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (id[c.pos] < 0 || next[c.pos] < 0) continue;  // merged away, or now the last symbol
    auto it = rank_.find(pair_key(id[c.pos], id[next[c.pos]]));
    if (it == rank_.end() || merges_[it->second].result != c.result) continue;  // stale
    const int right = next[c.pos];
    id[c.pos] = c.result;
    id[right] = -1;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  for (int i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_bos) const {
  if (!unsupported_.empty()) throw std::runtime_error(unsupported_);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  if (add_bos) ids.push_back(bos_);
  std::lock_guard<std::mutex> lock(cache_->mu);
  for_each_pretoken(text, [&](std::string_view word) {
    if (word.size() == 1) return encode_word(word, ids);
    auto it = cache_->words.find(std::string(word));
    if (it == cache_->words.end()) {
      std::vector<int32_t> w;
      encode_word(word, w);
      if (cache_->words.size() >= kCacheLimit) cache_->words.clear();
      it = cache_->words.emplace(std::string(word), std::move(w)).first;
    }
    ids.insert(ids.end(), it->second.begin(), it->second.end());
  });
  return ids;
}

const std::string& BpeTokenizer::bytes(int32_t id) const {
  static const std::string none;
  if (id < 0 || id >= vocab_size() || tokens_[id].special) return none;
  return tokens_[id].bytes;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id >= 0 && id < vocab_size() && tokens_[id].used)
      out += bytes(id);
    else
      out += fmt::format("<{}>", id);
  }
  return out;
}

std::string BpeTokenizer::piece(int32_t id) const {
  if (id == bos_) return "<BOS>";
  if (id == eos_) return "<EOS>";
  if (id < 0 || id >= vocab_size() || !tokens_[id].used) return fmt::format("<{}>", id);
  if (tokens_[id].special) return tokens_[id].text == kPadText ? "<PAD>" : tokens_[id].text;
  // Printable characters as themselves (UTF-8 included), the rest escaped.
  const std::string& b = tokens_[id].bytes;
  std::string out;
  for (size_t i = 0; i < b.size();) {
    const Utf8Char c = decode_utf8(b, i);
    if (c.cp == '\n')
      out += "\\n";
    else if (c.cp == '\t')
      out += "\\t";
    else if (c.cp == ' ')
      out += "␣";
    else if ((c.cp >= 0x20 && c.cp < 0x7F) || (c.cp >= 0xA0 && c.cp != 0xFFFFFFFF))
      out.append(b, i, c.len);
    else
      out += fmt::format("<0x{:02X}>", static_cast<unsigned char>(b[i]));
    i += c.len;
  }
  return out;
}

std::string BpeTokenizer::describe() const {
  return fmt::format("byte-level BPE, {} tokens", vocab_size());
}

}  // namespace dsv3::io
