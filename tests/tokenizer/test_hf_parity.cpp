// Our encoder and decoder against Hugging Face `tokenizers` on 44 strings (prose, code,
// numbers, contractions, eight scripts, emoji, odd white space). The ids come from
// tests/data/gen/tokenizer_reference.py, run once with tokenizers 0.23 on
// tests/data/tokenizer/tokenizer.json; that script also checked that HF reads our file and
// decodes its ids back to the same strings.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "reference/io/bpe.h"
#include "reference/io/byte_level.h"

namespace dsv3::io {
namespace {

const std::string kData = DSV3_TEST_DATA;

nlohmann::json reference() {
  std::ifstream in(kData + "/tokenizer/hf_reference.json");
  return nlohmann::json::parse(in);
}

TEST(HfParity, SameVocabularySize) {
  const BpeTokenizer t = BpeTokenizer::load(kData + "/tokenizer/tokenizer.json");
  EXPECT_EQ(t.vocab_size(), reference()["vocab_size"].get<int64_t>());
}

TEST(HfParity, SamePreTokens) {
  const nlohmann::json ref = reference();  // (a temporary's member would not outlive the loop)
  ASSERT_GE(ref["cases"].size(), 40u);
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    std::vector<std::string> ours;
    for (std::string_view w : pretokenize(text)) ours.push_back(bytes_to_unicode(w));
    EXPECT_EQ(ours, c["pretokens"].get<std::vector<std::string>>()) << text;
  }
}

TEST(HfParity, SameIdsAndTextBack) {
  const BpeTokenizer t = BpeTokenizer::load(kData + "/tokenizer/tokenizer.json");
  const nlohmann::json ref = reference();
  int cases = 0;
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(t.encode(text, false), ids) << text;
    EXPECT_EQ(t.encode(text, true), c["ids_with_bos"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(t.decode(ids), c["decoded"].get<std::string>()) << text;
    EXPECT_EQ(t.decode(ids), text);
    ++cases;
  }
  EXPECT_GE(cases, 40);
}

}  // namespace
}  // namespace dsv3::io

namespace dsv3::io {
namespace {

// The shipped model's tokenizer (tiny-configs/tiny/tokenizer.json, 2,048 tokens trained on the
// corpus) against HF `tokenizers` on the same strings: tests/data/tokenizer/hf_reference_tiny.json,
// written by tokenizer_reference.py on the GPU machine.
TEST(HfParity, TheShippedTokenizerEncodesLikeHuggingFace) {
  const BpeTokenizer t =
      BpeTokenizer::load(std::string(DSV3_SOURCE_DIR) + "/tiny-configs/tiny/tokenizer.json");
  std::ifstream in(kData + "/tokenizer/hf_reference_tiny.json");
  const nlohmann::json ref = nlohmann::json::parse(in);
  EXPECT_EQ(t.vocab_size(), ref["vocab_size"].get<int64_t>());
  int cases = 0;
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    EXPECT_EQ(t.encode(text, false), c["ids"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(t.encode(text, true), c["ids_with_bos"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(t.decode(c["ids"].get<std::vector<int32_t>>()), text);
    ++cases;
  }
  EXPECT_GE(cases, 40);
}

}  // namespace
}  // namespace dsv3::io
