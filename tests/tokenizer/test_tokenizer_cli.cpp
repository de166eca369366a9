// `dsv3 tokenizer ...` and `dsv3 tokenize --corpus` as a user runs them on a small corpus:
// the train/heldout token streams (BOS, document, EOS; domain offsets; U16) and one-line
// errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "reference/io/bpe.h"
#include "reference/io/safetensors.h"
#include "tests/support/shell.h"

namespace dsv3::io {
namespace {
namespace fs = std::filesystem;
using test_support::dsv3_cli;

fs::path corpus_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("dsv3_tokcli_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  // Two domains, each document followed by a line holding only 0x1E.
  std::ofstream(p / "code.train.txt") << "def f(x):\n    return x\n\x1e\nprint(f(2))\n\x1e\n";
  std::ofstream(p / "code.heldout.txt") << "f(3)\n\x1e\n";
  std::ofstream(p / "prose.train.txt") << "the expert routes the token\n\x1e\nthe the the\n\x1e\n";
  std::ofstream(p / "prose.heldout.txt") << "the router\n\x1e\n";
  return p;
}

std::vector<int32_t> tokens_of(const SafetensorsFile& f) {
  const TensorView* t = f.find("tokens");
  EXPECT_TRUE(t);
  EXPECT_EQ(t->dtype, DType::kU16);
  std::vector<int32_t> ids(t->numel());
  for (int64_t i = 0; i < t->numel(); ++i) {
    uint16_t v;
    std::memcpy(&v, t->data + 2 * i, 2);
    ids[i] = v;
  }
  return ids;
}

std::vector<int64_t> offsets_of(const SafetensorsFile& f) {
  const TensorView* t = f.find("domain_offsets");
  EXPECT_TRUE(t);
  EXPECT_EQ(t->dtype, DType::kI64);
  std::vector<int64_t> v(t->numel());
  std::memcpy(v.data(), t->data, t->nbytes);
  return v;
}

TEST(TokenizeCli, CorpusWithTheByteTokenizer) {
  fs::path dir = corpus_dir("bytes");
  auto r = dsv3_cli("tokenize --corpus " + dir.string() + " --out " + (dir / "tok").string());
  ASSERT_EQ(r.status, 0) << r.out;
  SafetensorsFile train((dir / "tok.train.safetensors").string());
  const std::vector<int32_t> ids = tokens_of(train);
  // code: BOS "def f(x):\n    return x" EOS BOS "print(f(2))" EOS; then prose.
  const std::string d1 = "def f(x):\n    return x", d2 = "print(f(2))";
  const std::string d3 = "the expert routes the token", d4 = "the the the";
  const int64_t code = static_cast<int64_t>(d1.size() + d2.size() + 4);
  const int64_t prose = static_cast<int64_t>(d3.size() + d4.size() + 4);
  EXPECT_EQ(offsets_of(train), (std::vector<int64_t>{0, code, code + prose}));
  EXPECT_EQ(train.metadata().at("domains"), "code,prose");
  ASSERT_EQ(static_cast<int64_t>(ids.size()), code + prose);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], 'd' + 3);
  EXPECT_EQ(ids[d1.size() + 1], 1);  // EOS after the first document
  EXPECT_EQ(ids[d1.size() + 2], 0);  // BOS of the second
  EXPECT_EQ(ids[code - 1], 1);
  EXPECT_EQ(ids[code], 0);
  EXPECT_EQ(ids.back(), 1);
  SafetensorsFile held((dir / "tok.heldout.safetensors").string());
  EXPECT_EQ(offsets_of(held), (std::vector<int64_t>{0, 6, 6 + 12}));
  EXPECT_NE(r.out.find("prose"), std::string::npos) << r.out;
}

TEST(TokenizeCli, CorpusWithABpeTokenizer) {
  fs::path dir = corpus_dir("bpe");
  const std::string tok = (dir / "tokenizer.json").string();
  auto r = dsv3_cli("tokenizer train --corpus " + dir.string() + " --vocab 280 --out " + tok);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("bytes per token"), std::string::npos) << r.out;
  r = dsv3_cli("tokenize --corpus " + dir.string() + " --tokenizer " + tok + " --out " +
               (dir / "tok").string());
  ASSERT_EQ(r.status, 0) << r.out;
  const BpeTokenizer t = BpeTokenizer::load(tok);
  SafetensorsFile train((dir / "tok.train.safetensors").string());
  const std::vector<int32_t> ids = tokens_of(train);
  const std::vector<int64_t> off = offsets_of(train);
  ASSERT_EQ(off.size(), 3u);
  EXPECT_EQ(off.back(), static_cast<int64_t>(ids.size()));
  // The prose domain decodes back to its two documents, each between BOS and EOS.
  std::vector<int32_t> prose(ids.begin() + off[1], ids.end());
  std::vector<int32_t> expect = t.encode("the expert routes the token");
  expect.push_back(1);
  for (int32_t id : t.encode("the the the")) expect.push_back(id);
  expect.push_back(1);
  EXPECT_EQ(prose, expect);
  EXPECT_LT(prose.size(), 27u + 11u + 4u);  // fewer tokens than bytes
}

TEST(TokenizerCli, EncodeDecodeStatsAndErrors) {
  fs::path dir = corpus_dir("cmds");
  const std::string tok = (dir / "tokenizer.json").string();
  ASSERT_EQ(
      dsv3_cli("tokenizer train --corpus " + dir.string() + " --vocab 270 --out " + tok).status, 0);
  auto r = dsv3_cli("tokenizer encode --tokenizer " + tok + " 'the token'");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.rfind("0,", 0), 0u) << r.out;  // BOS first
  EXPECT_NE(r.out.find("[<BOS>]"), std::string::npos) << r.out;
  const std::string ids = r.out.substr(0, r.out.find('\n'));
  r = dsv3_cli("tokenizer decode --tokenizer " + tok + " " + ids);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "the token\n");
  r = dsv3_cli("tokenizer stats --tokenizer " + dir.string() + " --text " +
               (dir / "prose.heldout.txt").string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("prose.heldout.txt"), std::string::npos) << r.out;

  std::ofstream(dir / "bad.json") << "{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}";
  r = dsv3_cli("tokenizer encode --tokenizer " + (dir / "bad.json").string() + " x");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("bad.json: merge 0"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  r = dsv3_cli("tokenize --corpus " + (dir / "nothing").string() + " --out x");
  EXPECT_EQ(r.status, 2) << r.out;
}

// A checkpoint folder with a tokenizer.json: generate encodes the prompt and decodes the output
// with it; a tokenizer larger than the config's vocabulary is refused in one line.
TEST(TokenizerCli, ACheckpointFolderUsesItsTokenizer) {
  fs::path dir = corpus_dir("model");
  const fs::path model = dir / "model";
  fs::create_directories(model);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(std::string(DSV3_TEST_DATA) + "/tiny-yarn-groups/" + f, model / f);
  // vocab_size 300: room for 41 merges.
  ASSERT_EQ(dsv3_cli("tokenizer train --corpus " + dir.string() +
                     " --vocab 290 --min-frequency 1 --out " + (model / "tokenizer.json").string())
                .status,
            0);
  const BpeTokenizer t = BpeTokenizer::load((model / "tokenizer.json").string());
  auto r = dsv3_cli("generate --model " + model.string() + " --prompt 'the expert' -n 3 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["prompt_ids"].get<std::vector<int32_t>>(), t.encode("the expert"));
  EXPECT_TRUE(j.contains("text"));         // (random weights: the text is arbitrary bytes)
  EXPECT_LT(j["prompt_ids"].size(), 11u);  // merged: fewer tokens than BOS + 10 bytes

  fs::copy_file(std::string(DSV3_TEST_DATA) + "/tokenizer/tokenizer.json", model / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  r = dsv3_cli("generate --model " + model.string() + " --prompt 'the expert' -n 3");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("beyond its vocab_size 300"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace dsv3::io
