// `dsv3 eval` and `dsv3 experts` as a user runs them (DSV3_BINARY): the reported numbers agree
// with each other and with the library, the JSON shapes the issue specifies, the SVG figure,
// the terminal heat map without colour, and one-line errors for bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <string>

#include "reference/io/documents.h"
#include "reference/model/evaluate.h"
#include "reference/model/model.h"
#include "tests/support/shell.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test_support::dsv3_cli;
using test_support::ShellResult;

const std::string kModel = "tiny-yarn";  // random weights, byte tokenizer, 16 routed experts

class EvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dsv3-eval-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name, const std::string& content) const {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

json run_json(const std::string& args) {
  ShellResult r = dsv3_cli(args + " --json");
  EXPECT_EQ(r.status, 0) << r.out;
  return json::parse(r.out);
}

int lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

std::string read(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

const std::string kCorpus =
    "The quick brown fox jumps over the lazy dog.\n\x1e\n"
    "def f(x):\n    return x * 2\n\x1e\n"
    "Der schnelle braune Fuchs.\n\x1e\n";

TEST_F(EvalCli, BitsPerByteIsTheLossOverTheBytes) {
  json j = run_json("eval --model " + kModel + " --text " + file("c.txt", kCorpus));
  const double loss = j["loss"], bpb = j["bits_per_byte"];
  const int64_t predicted = j["predicted"], bytes = j["bytes"];
  EXPECT_NEAR(bpb, loss * predicted / (bytes * std::numbers::ln2), 1e-12 * bpb);
  EXPECT_NEAR(j["perplexity"].get<double>(), std::exp(loss), 1e-9 * std::exp(loss));
  EXPECT_GT(loss, 0);
}

TEST_F(EvalCli, DocumentsSplitAtSeparatorLinesAreBosTextEos) {
  json j = run_json("eval --model " + kModel + " --text " + file("c.txt", kCorpus));
  EXPECT_EQ(j["documents"], 3);
  const int64_t bytes = 44 + 26 + 26;  // each document's text, without "\n\x1e\n"
  EXPECT_EQ(j["bytes"], bytes);
  EXPECT_EQ(j["tokens"], bytes + 3 * 2);  // byte tokenizer: one id per byte, BOS and EOS each
  EXPECT_EQ(j["chunks"], 3);
  EXPECT_EQ(j["predicted"], bytes + 3);  // every id after BOS
  EXPECT_EQ(j["bytes_per_token"], 1.0);
  EXPECT_EQ(j["truncated"], false);
}

TEST_F(EvalCli, LossEqualsTheLibraryAndAShortTextIsOneForward) {
  const std::string text = "Loss-free balancing keeps the load even.";
  json j = run_json("eval --model " + kModel + " --text " + file("t.txt", text));
  EXPECT_EQ(j["documents"], 1);  // no separator line: the whole file
  EXPECT_EQ(j["chunks"], 1);
  model::Model m = model::Model::load(kModel, 0);
  std::vector<int32_t> ids = m.tokenizer().encode(text, true);
  ids.push_back(m.tokenizer().eos());
  model::KVCache cache = m.new_cache(model::AttnImpl::kAbsorbed);
  const double nats = model::next_token_nats(m.forward(ids, cache), ids);
  EXPECT_NEAR(j["loss"].get<double>(), nats / double(ids.size() - 1), 1e-12);
  // A smaller context cuts the text into more chunks and scores fewer positions.
  json k = run_json("eval --model " + kModel + " --context 8 --text " + path("t.txt"));
  EXPECT_EQ(k["chunks"], (ids.size() + 7) / 8);
  EXPECT_EQ(k["predicted"], ids.size() - k["chunks"].get<size_t>());
}

TEST_F(EvalCli, MaxTokensLimitsTheWork) {
  json j = run_json("eval --model " + kModel + " --max-tokens 30 --text " + file("c.txt", kCorpus));
  EXPECT_EQ(j["tokens"], 30);
  EXPECT_EQ(j["bytes"], 29);  // BOS + 29 bytes of the first document
  EXPECT_EQ(j["truncated"], true);
}

TEST_F(EvalCli, TextReportNamesEveryQuantity) {
  ShellResult r = dsv3_cli("eval --model " + kModel + " --text " + file("c.txt", kCorpus));
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* key : {"documents", "bytes", "tokens", "predicted", "bytes per token", "loss",
                          "perplexity", "bits per byte"})
    EXPECT_NE(r.out.find(key), std::string::npos) << key;
}

TEST_F(EvalCli, ExpertsJsonRelativeLoadsSumToTheExpertCount) {
  json j = run_json("experts --model " + kModel + " --text " + file("c.txt", kCorpus));
  ASSERT_TRUE(j.contains("layers"));
  EXPECT_FALSE(j.contains("texts"));
  ASSERT_EQ(j["layers"].size(), 2u);  // MoE layers 1 and 2 (layer 0 is dense)
  EXPECT_EQ(j["layers"][0]["layer"], 1);
  double sum_of_max = 0;
  for (const json& layer : j["layers"]) {
    ASSERT_EQ(layer["relative_load"].size(), 16u);
    double sum = 0, mx = 0;
    for (double v : layer["relative_load"]) sum += v, mx = std::max(mx, v);
    EXPECT_NEAR(sum, 16.0, 1e-9);
    EXPECT_EQ(layer["max_relative_load"].get<double>(), mx);
    sum_of_max += mx;
  }
  EXPECT_NEAR(j["mean_max_relative_load"].get<double>(), sum_of_max / 2, 1e-12);
}

TEST_F(EvalCli, ExpertsJsonEqualsCountsFromATrace) {
  const std::string text = "import os\nprint(os.getcwd())\n";
  json j = run_json("experts --model " + kModel + " --text " + file("p.py", text));
  model::Model m = model::Model::load(kModel, 0);
  std::vector<int32_t> ids = m.tokenizer().encode(text, true);
  ids.push_back(m.tokenizer().eos());
  model::Trace trace;
  model::ForwardOptions opt;
  opt.trace = &trace;
  model::KVCache cache = m.new_cache(model::AttnImpl::kAbsorbed);
  m.forward(ids, cache, opt);  // shorter than the context: one chunk
  EXPECT_EQ(j["tokens"], ids.size());
  for (const json& layer : j["layers"]) {
    std::vector<int64_t> counts(16, 0);
    for (const model::TokenTrace& t : trace.tokens)
      for (int e : t.layers[layer["layer"].get<int>()].router.topk_idx) ++counts[e];
    EXPECT_EQ(layer["tokens_routed"].get<std::vector<int64_t>>(), counts);
    const double mean = double(ids.size() * 4) / 16;  // top-4 of 16
    for (int e = 0; e < 16; ++e)
      EXPECT_NEAR(layer["relative_load"][e].get<double>(), counts[e] / mean, 1e-12);
  }
}

TEST_F(EvalCli, ExpertsSeveralTextsGiveOneEntryEach) {
  json j = run_json("experts --model " + kModel + " --text " + file("a.txt", kCorpus) + " --text " +
                    file("b.py", "x = 1\n") + " --label prose --label code");
  ASSERT_TRUE(j.contains("texts"));
  EXPECT_FALSE(j.contains("layers"));
  ASSERT_EQ(j["texts"].size(), 2u);
  EXPECT_EQ(j["texts"][0]["label"], "prose");
  EXPECT_EQ(j["texts"][1]["label"], "code");
  EXPECT_EQ(j["texts"][1]["file"], path("b.py"));
  EXPECT_EQ(j["texts"][1]["tokens"], 6 + 2);
  for (const json& t : j["texts"]) {
    ASSERT_EQ(t["layers"].size(), 2u);
    for (const json& layer : t["layers"]) EXPECT_EQ(layer["relative_load"].size(), 16u);
  }
  // Without --label, the file stems.
  json d = run_json("experts --model " + kModel + " --text " + path("a.txt") + " --text " +
                    path("b.py"));
  EXPECT_EQ(d["texts"][0]["label"], "a");
  EXPECT_EQ(d["texts"][1]["label"], "b");
}

TEST_F(EvalCli, ExpertsSvgHasOnePanelPerTextAndIsDeterministic) {
  const std::string a = file("a.txt", kCorpus), b = file("b.py", "def g():\n    pass\n");
  const std::string args = "experts --model " + kModel + " --text " + a + " --text " + b +
                           " --label 'prose & co' --label code --svg ";
  ShellResult r1 = dsv3_cli(args + path("1.svg"));
  ShellResult r2 = dsv3_cli(args + path("2.svg"));
  ASSERT_EQ(r1.status, 0) << r1.out;
  ASSERT_EQ(r2.status, 0) << r2.out;
  const std::string svg = read(path("1.svg"));
  EXPECT_EQ(svg, read(path("2.svg")));
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
  EXPECT_EQ(count(svg, "<g class=\"panel\""), 2u);
  EXPECT_EQ(count(svg, "<g "), count(svg, "</g>"));
  EXPECT_EQ(count(svg, "<text"), count(svg, "</text>"));
  EXPECT_EQ(count(svg, "<rect x"), 2u * 2 * 16 + 2 + 1);     // cells, panel frames, colour bar
  EXPECT_NE(svg.find("prose &amp; co"), std::string::npos);  // labels are escaped
  EXPECT_NE(svg.find(">code</text>"), std::string::npos);
  EXPECT_NE(svg.find("Relative expert load"), std::string::npos);  // colour bar label
  EXPECT_NE(svg.find("linearGradient"), std::string::npos);
  EXPECT_NE(r1.out.find("wrote " + path("1.svg")), std::string::npos);
}

TEST_F(EvalCli, ExpertsHeatMapWithoutColourUsesGlyphs) {
  ShellResult r = dsv3_cli("experts --model " + kModel + " --text " + file("c.txt", kCorpus));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos);  // not a terminal: no escape sequences
  EXPECT_NE(r.out.find("  L1 "), std::string::npos);
  EXPECT_NE(r.out.find("  L2 "), std::string::npos);
  EXPECT_NE(r.out.find("max"), std::string::npos);
  EXPECT_NE(r.out.find("1 = balanced"), std::string::npos);
  EXPECT_NE(r.out.find("▒"), std::string::npos);  // a mid-scale glyph somewhere
}

TEST_F(EvalCli, ExpertsScaleMaxFixesTheSharedScale) {
  const std::string text = file("c.txt", kCorpus);
  ShellResult r = dsv3_cli("experts --model " + kModel + " --text " + text + " --scale-max 10");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find(" 10  (1 = balanced, at 10% of the scale)"), std::string::npos) << r.out;
  ASSERT_EQ(dsv3_cli("experts --model " + kModel + " --text " + text + " --scale-max 10 --svg " +
                     path("f.svg"))
                .status,
            0);
  const std::string svg = read(path("f.svg"));
  EXPECT_NE(svg.find(">10</text>"), std::string::npos);  // the colour bar's top tick
  EXPECT_EQ(dsv3_cli("experts --model " + kModel + " --text " + text + " --scale-max -1").status,
            2);
}

TEST_F(EvalCli, BadInputGivesOneLineAndNonZeroExit) {
  const std::string text = file("c.txt", kCorpus), empty = file("empty.txt", "");
  const std::string only_sep = file("sep.txt", "\x1e\n\x1e\n");
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"eval --model " + kModel + " --text " + path("missing.txt"), "no such file"},
      {"eval --model " + kModel + " --text " + empty, "empty"},
      {"eval --model " + kModel + " --text " + only_sep, "empty"},
      {"eval --model " + kModel + " --text " + dir_.string(), "directory"},
      {"eval --model " + kModel + " --text " + text + " --context 0", "--context"},
      {"eval --model " + kModel + " --text " + text + " --context 1", "--context"},
      {"eval --model " + kModel + " --text " + text + " --context 16385",
       "max_position_embeddings"},
      {"eval --model " + kModel + " --text " + text + " --max-tokens -1", "--max-tokens"},
      {"eval --model no-such-model --text " + text, "no-such-model"},
      {"eval --model " + kModel, "--text"},
      {"experts --model " + kModel + " --text " + text + " --context 0", "--context"},
      {"experts --model " + kModel + " --text " + text + " --context 99999",
       "max_position_embeddings"},
      {"experts --model " + kModel + " --text " + text + " --text " + text + " --label one",
       "--label"},
      {"experts --model " + kModel + " --text " + text + " --text " + path("missing.txt"),
       "no such file"},
      {"experts --model no-such-model --text " + text, "no-such-model"},
      {"experts --model " + kModel + " --text " + text + " --svg " + path("no/dir/x.svg"), "--svg"},
  };
  for (const Case& c : cases) {
    ShellResult r = dsv3_cli(c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_EQ(lines(r.out), 1) << c.args << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("dsv3: ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << c.args << "\n" << r.out;
  }
}

}  // namespace
}  // namespace dsv3
