// BPE training, encoding and the tokenizer.json file: hand-computed merges, the tie-break,
// round trips of arbitrary bytes, save/load, determinism and one clear error per bad file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "reference/io/bpe.h"
#include "reference/io/safetensors.h"
#include "tests/support/temp_dir.h"

namespace dsv3::io {
namespace {
namespace fs = std::filesystem;

const std::string kData = DSV3_TEST_DATA;
using Pairs = std::vector<std::pair<int32_t, int32_t>>;

// Byte b has id b + 3.
constexpr int32_t B(char c) {
  return static_cast<unsigned char>(c) + 3;
}

Pairs merge_pairs(const BpeTokenizer& t) {
  Pairs p;
  for (const auto& m : t.merges()) p.emplace_back(m.left, m.right);
  return p;
}

BpeTokenizer train(const std::vector<std::string_view>& docs, int64_t vocab, int64_t min_freq = 2) {
  BpeTrainOptions o;
  o.vocab_size = vocab;
  o.min_frequency = min_freq;
  return train_bpe(docs, o).tokenizer;
}

fs::path temp_dir(const std::string& name) {
  return test_support::fresh_temp_dir("dsv3_bpe_", name);
}

// One word, "aaabdaaabac": pairs aa x4, ab x2, bd, da, ba, ac.
//   1. (a,a) -> 259 "aa"; left to right, "aaa" becomes [aa, a]: aa a b d aa a b a c
//   2. (aa,a) and (a,b) both occur twice; the tie goes to the smaller ids: (a,b) = (100, 101)
//      before (259, 100) -> 260 "ab": aa ab d aa ab a c
//   3. (aa,ab) occurs twice -> 261 "aaab"
TEST(BpeTrain, ThreeMergesByHand) {
  BpeTokenizer t = train({"aaabdaaabac"}, 262);
  EXPECT_EQ(t.vocab_size(), 262);
  EXPECT_EQ(merge_pairs(t), (Pairs{{B('a'), B('a')}, {B('a'), B('b')}, {259, 260}}));
  EXPECT_EQ(t.bytes(261), "aaab");
  EXPECT_EQ(t.encode("aaabdaaabac", false),
            (std::vector<int32_t>{261, B('d'), 261, B('a'), B('c')}));
  EXPECT_EQ(t.encode("aaabdaaabac", true).front(), 0);
  // Vocabulary left unfilled when no pair occurs twice any more.
  EXPECT_EQ(train({"aaabdaaabac"}, 300).vocab_size(), 262);
}

// Every pair occurs once ("ab", " cd"): the smallest (left, right) ids win, so the space
// (id 35) goes first, then (a,b) = (100,101) before (" c", d) = (259, 103).
TEST(BpeTrain, TiesGoToTheSmallestPairOfIds) {
  BpeTokenizer t = train({"ab cd"}, 262, /*min_freq=*/1);
  EXPECT_EQ(merge_pairs(t), (Pairs{{B(' '), B('c')}, {B('a'), B('b')}, {259, B('d')}}));
}

TEST(BpeTrain, WordsNeverCrossDocumentsOrPreTokens) {
  // "ab" occurs 3 times inside words; "b a" never merges across the space or a document.
  BpeTokenizer t = train({"ab ab", "ab"}, 300);
  EXPECT_EQ(merge_pairs(t), (Pairs{{B('a'), B('b')}}));  // " ab" occurs once: no more merges
}

TEST(BpeTrain, DeterministicAndIndependentOfDocumentOrder) {
  std::vector<std::string> texts;
  std::mt19937 rng(3);
  const char* words[] = {"the", "expert", "router", "latent", "Привет", "中文", "42", "don't"};
  for (int d = 0; d < 200; ++d) {
    std::string s;
    for (int w = 0; w < 30; ++w) s += std::string(words[rng() % 8]) + (rng() % 5 ? " " : ",\n");
    texts.push_back(s);
  }
  std::vector<std::string_view> docs(texts.begin(), texts.end());
  const std::string a = train(docs, 400).to_json();
  EXPECT_EQ(train(docs, 400).to_json(), a);
  std::reverse(docs.begin(), docs.end());
  EXPECT_EQ(train(docs, 400).to_json(), a);
}

TEST(BpeTokenizer, MergesThatSpellAnExistingTokenReuseItsId) {
  // (a,b) -> ab, (ab,c) -> abc, (b,c) -> bc, (a,bc) -> abc again.
  BpeTokenizer t =
      BpeTokenizer::from_merges({{B('a'), B('b')}, {259, B('c')}, {B('b'), B('c')}, {B('a'), 261}});
  EXPECT_EQ(t.vocab_size(), 262);
  EXPECT_EQ(t.merges()[3].result, 260);
  EXPECT_EQ(t.encode("abc", false), std::vector<int32_t>{260});
  BpeTokenizer back = BpeTokenizer::from_json(t.to_json(), "mem");
  EXPECT_EQ(back.merges()[3].result, 260);
  EXPECT_EQ(back.to_json(), t.to_json());
}

TEST(BpeTokenizer, SpecialIdsAndPieces) {
  BpeTokenizer t = BpeTokenizer::from_merges({{B(' '), B('x')}});
  EXPECT_EQ(t.bos(), 0);
  EXPECT_EQ(t.eos(), 1);
  EXPECT_EQ(t.piece(0), "<BOS>");
  EXPECT_EQ(t.piece(2), "<PAD>");
  EXPECT_EQ(t.piece(259), "␣x");
  EXPECT_EQ(t.piece(B('\n')), "\\n");
  EXPECT_EQ(t.piece(B('\x07')), "<0x07>");
  EXPECT_EQ(t.piece(9999), "<9999>");
  EXPECT_EQ(t.decode({0, B('h'), B('i'), 259, 1, 2}), "hi x");
  EXPECT_EQ(t.describe(), "byte-level BPE, 260 tokens");
}

// Random byte strings (valid UTF-8 or not) round-trip through the test tokenizer and the
// shipped model's (tiny-configs/tiny/tokenizer.json, 2,048 tokens).
class BpeRoundTrip : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Tokenizers, BpeRoundTrip,
                         ::testing::Values(kData + "/tokenizer/tokenizer.json",
                                           kData + "/../../tiny-configs/tiny/tokenizer.json"));

TEST_P(BpeRoundTrip, ArbitraryBytesRoundTrip) {
  const BpeTokenizer t = BpeTokenizer::load(GetParam());
  const std::vector<std::string> pieces = {"the",      " the", "  ",  "\n",   "Привет",
                                           "中文",     "'s",   "123", "\xff", "\xc3",
                                           "\xe4\xbd", "\t",   "🙂"};
  std::mt19937 rng(11);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string s;
    const int n = static_cast<int>(rng() % 30);
    for (int k = 0; k < n; ++k) {
      if (rng() % 2)
        s += static_cast<char>(rng() % 256);
      else
        s += pieces[rng() % pieces.size()];
    }
    const std::vector<int32_t> ids = t.encode(s, true);
    ASSERT_EQ(ids.front(), t.bos());
    for (int32_t id : ids) ASSERT_LT(id, t.vocab_size());
    ASSERT_EQ(t.decode(ids), s);
  }
}

TEST(BpeTokenizer, SaveLoadGivesTheSameFileAndEncoding) {
  const BpeTokenizer t = BpeTokenizer::load(kData + "/tokenizer/tokenizer.json");
  fs::path dir = temp_dir("save");
  t.save((dir / "tokenizer.json").string());
  const BpeTokenizer back = BpeTokenizer::load((dir / "tokenizer.json").string());
  EXPECT_EQ(back.to_json(), t.to_json());
  std::ifstream committed(kData + "/tokenizer/tokenizer.json", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(committed)), {});
  EXPECT_EQ(t.to_json(), text);  // reading and writing our own file changes no byte
  for (const char* s : {"Multi-head latent attention", "def f(x):\n\treturn x", "Größe 中文"})
    EXPECT_EQ(back.encode(s), t.encode(s)) << s;
  // A model folder with a tokenizer.json gets it; one without gets the byte tokenizer.
  EXPECT_EQ(load_tokenizer(dir.string())->describe(), t.describe());
  EXPECT_EQ(load_tokenizer(kData + "/tiny-yarn-groups")->describe(), "byte");
}

// The [left, right] merge form that newer Hugging Face versions write reads the same.
TEST(BpeTokenizer, ReadsBothMergeForms) {
  const BpeTokenizer t = BpeTokenizer::load(kData + "/tokenizer/tokenizer.json");
  nlohmann::json j = nlohmann::json::parse(t.to_json());
  for (auto& m : j["model"]["merges"]) {
    const std::string s = m.get<std::string>();
    m = nlohmann::json::array({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  const BpeTokenizer u = BpeTokenizer::from_json(j.dump(), "pairs.json");
  EXPECT_EQ(u.to_json(), t.to_json());
}

// ---- files from elsewhere and broken files ----

std::string minimal_file(const std::string& model_extra, const std::string& pre = "") {
  // Bytes 'a' and 'b' only, one merge.
  return R"({"added_tokens": [{"id": 0, "content": "<｜begin▁of▁sentence｜>", "special": true},
                              {"id": 1, "content": "<｜end▁of▁sentence｜>", "special": true}],
             "pre_tokenizer": )" +
         (pre.empty() ? R"({"type": "ByteLevel", "use_regex": true})" : pre) +
         R"(, "decoder": {"type": "ByteLevel"},
             "model": {"type": "BPE", "vocab": {"a": 2, "b": 3, "ab": 4}, "merges": ["a b"])" +
         model_extra + "}}";
}

std::string error_of(const std::string& text) {
  try {
    BpeTokenizer::from_json(text, "bad.json");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(BpeFile, MalformedFilesGiveOneClearLine) {
  const auto expect = [](const std::string& text, const std::string& needle) {
    const std::string msg = error_of(text);
    EXPECT_NE(msg.find("bad.json: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  };
  expect("{\"model\": ", "not valid JSON");
  expect("{\"version\": \"1.0\"}", "no \"model\" object");
  expect(R"({"model": {"type": "WordPiece", "vocab": {}}})", "model type \"WordPiece\"");
  expect(R"({"model": {"type": "BPE", "vocab": [], "merges": []}})",
         "model.vocab is not an object");
  expect(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": {}}})", "not a list");
  expect(R"({"model": {"vocab": {"a": 0, "b": 0}, "merges": []}})", "id 0 is given to both");
  expect(R"({"model": {"vocab": {"a": -1}, "merges": []}})", "outside [0,");
  expect(R"({"model": {"vocab": {"a": 99999999}, "merges": []}})", "outside [0,");
  expect(R"({"model": {"vocab": {"a": "x"}, "merges": []}})", "is not an integer id");
  expect(R"({"model": {"vocab": {"a": 0, "b": 1}, "merges": ["a c"]}})",
         "names \"c\", which is not in the vocabulary");
  expect(R"({"model": {"vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})",
         "names \"ab\", which is not in the vocabulary");
  expect(R"({"model": {"vocab": {"a": 0}, "merges": ["a a a"]}})", "one space");
  expect(R"({"model": {"vocab": {"a": 0}, "merges": [3]}})", "neither");
  expect(R"({"added_tokens": [{"id": 0, "content": "x"}], "model": {"vocab": {"a": 0},
             "merges": []}})",
         "id 0 is given to both");
  expect(R"({"decoder": {"type": "Metaspace"}, "model": {"vocab": {}, "merges": []}})",
         "decoder Metaspace is not supported");
  expect(R"({"model": {"type": 3, "vocab": {}, "merges": []}})", "unexpected JSON value");
}

TEST(BpeFile, AnUnsupportedPreTokenizerStillDecodesAndRefusesToEncode) {
  // DeepSeek-V3's own file: a Sequence of Split regexes, then ByteLevel without its regex.
  const std::string pre = R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated"},
      {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})";
  const BpeTokenizer t = BpeTokenizer::from_json(minimal_file("", pre), "ds.json");
  EXPECT_EQ(t.decode({0, 4, 2, 1}), "aba");
  EXPECT_EQ(t.bos(), 0);
  try {
    t.encode("ab");
    FAIL() << "encode should refuse";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("ds.json: cannot encode: the pre_tokenizer "
                                         "Sequence[Split, ByteLevel] is not supported"),
              std::string::npos)
        << e.what();
  }
  // The same vocabulary with the plain ByteLevel pre-tokenizer lacks most bytes.
  const BpeTokenizer u = BpeTokenizer::from_json(minimal_file(""), "small.json");
  EXPECT_NE(u.encode_unsupported().find("byte 0x00 has no token"), std::string::npos);
}

TEST(BpeFile, SpecialTokensOfOtherCheckpointsComeFromTheirConfigs) {
  fs::path dir = temp_dir("foreign");
  const BpeTokenizer ours = BpeTokenizer::load(kData + "/tokenizer/tokenizer.json");
  nlohmann::json j = nlohmann::json::parse(ours.to_json());
  j["added_tokens"][0]["content"] = "<s>";
  j["added_tokens"][1]["content"] = "</s>";
  j["model"]["vocab"].erase(std::string(kBosText));
  j["model"]["vocab"].erase(std::string(kEosText));
  std::ofstream(dir / "tokenizer.json") << j.dump();
  EXPECT_THROW(BpeTokenizer::load((dir / "tokenizer.json").string()), FormatError);
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>"})";
  BpeTokenizer t = BpeTokenizer::load((dir / "tokenizer.json").string());
  EXPECT_EQ(t.bos(), 0);
  EXPECT_EQ(t.eos(), 1);
  EXPECT_EQ(t.encode("the expert"), ours.encode("the expert"));
  fs::remove(dir / "tokenizer_config.json");
  std::ofstream(dir / "config.json") << R"({"bos_token_id": 1, "eos_token_id": [0]})";
  t = BpeTokenizer::load((dir / "tokenizer.json").string());
  EXPECT_EQ(t.bos(), 1);
  EXPECT_EQ(t.eos(), 0);
}

}  // namespace
}  // namespace dsv3::io
