// The model's command line as a user runs it: dsv3 forward / generate / demo.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "reference/io/safetensors.h"
#include "reference/model/model.h"
#include "tests/model/golden.h"
#include "tests/support/shell.h"

namespace dsv3 {
namespace {

using CmdResult = test_support::ShellResult;

CmdResult run(const std::string& args) {
  return test_support::dsv3_cli(args);
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("dsv3-test-" + std::to_string(getpid()) + "-" + name))
      .string();
}

TEST(Cli, ForwardDumpMatchesTransformersGolden) {
  std::string out = temp_path("dump.safetensors");
  io::SafetensorsFile golden(testing::data_path("tiny-yarn-groups/golden.safetensors"));
  std::vector<int64_t> ids = testing::golden_i64(golden, "input_ids");
  std::string list;
  for (int64_t id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
  CmdResult r = run("forward --model " + testing::data_path("tiny-yarn-groups") + " --ids " + list +
                    " --dump " + out);
  ASSERT_EQ(r.status, 0) << r.out;
  io::SafetensorsFile dump(out);
  Mat logits = testing::golden_matrix(dump, "logits");
  EXPECT_LT((logits - testing::golden_matrix(golden, "logits")).cwiseAbs().maxCoeff(), 1e-4f);
  EXPECT_LT((testing::golden_matrix(dump, "hidden.3") - testing::golden_matrix(golden, "hidden.3"))
                .cwiseAbs()
                .maxCoeff(),
            1e-4f);
  ASSERT_NE(dump.find("router.1.logits"), nullptr);
  EXPECT_EQ(dump.find("router.1.topk_idx")->dtype, io::DType::kI64);
  EXPECT_EQ(dump.find("router.2.topk_weight")->shape,
            (std::vector<int64_t>{static_cast<int64_t>(ids.size()), 4}));
  EXPECT_EQ(dump.find("router.0.logits"), nullptr);  // layer 0 is dense
  std::filesystem::remove(out);
}

TEST(Cli, GenerateJsonIsDeterministicAndMatchesTheLibrary) {
  CmdResult a = run("generate --model tiny-random --prompt hello -n 6 --json");
  CmdResult b = run("generate --model tiny-random --prompt hello -n 6 --json --attn naive");
  ASSERT_EQ(a.status, 0) << a.out;
  auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(ja["ids"].size(), 6u);
  EXPECT_EQ(ja["ids"], jb["ids"]);  // both attention forms decode the same tokens
  CmdResult s1 =
      run("generate --model tiny-random --prompt hello -n 6 --json --temperature 1 --top-p 0.9 "
          "--seed 3");
  CmdResult s2 =
      run("generate --model tiny-random --prompt hello -n 6 --json --temperature 1 --top-p 0.9 "
          "--seed 3");
  EXPECT_EQ(s1.out, s2.out);
}

TEST(Cli, DemoPrintsRoutingForEveryStep) {
  CmdResult r = run("demo -n 3");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("layer  1  groups ["), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ids: "), std::string::npos);
}

TEST(Cli, ErrorsAreOneLineWithExitCode2) {
  for (const char* args :
       {"forward --model tiny-random --ids 1,x", "forward --model no-such-model --ids 1",
        "generate --model tiny-random --prompt hi --ids 1",
        "generate --model tiny-random --prompt hi --top-p 2",
        "forward --model tiny-random --ids 99999",
        "generate --model tiny-random --prompt hi --attn fast", "no-such-command"}) {
    CmdResult r = run(args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << ": " << r.out;
    EXPECT_EQ(r.out.rfind("dsv3: ", 0), 0u) << args << ": " << r.out;
  }
}

}  // namespace
}  // namespace dsv3

namespace dsv3 {
namespace {

TEST(Cli, ForwardInFp8MovesTheLogitsALittle) {
  std::string f32 = temp_path("f32.safetensors"), f8 = temp_path("f8.safetensors");
  const std::string ids = "0,71,104,101,32,109,111,100,101,108";
  ASSERT_EQ(run("forward --model tiny-random --attn naive --ids " + ids + " --dump " + f32).status,
            0);
  CmdResult r =
      run("forward --model tiny-random --precision fp8 --accum h100 --promote 128 --ids " + ids +
          " --dump " + f8);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("fp8, h100 accumulation, promote 128"), std::string::npos) << r.out;
  io::SafetensorsFile a(f32), b(f8);
  Mat la = testing::golden_matrix(a, "logits"), lb = testing::golden_matrix(b, "logits");
  float rel = (la - lb).norm() / la.norm();
  EXPECT_GT(rel, 1e-4f);  // FP8 really ran
  EXPECT_LT(rel, 0.6f);   // and stayed close to float32
  // The absorbed form in FP8 folds kv_b_proj dequantized from its FP8 blocks: as far from float32
  // as the naive FP8 run (which also quantizes kv_b_proj's input), and different from both.
  const std::string fa = f8 + ".absorbed";
  r = run("forward --model tiny-random --precision fp8 --attn absorbed --ids " + ids + " --dump " +
          fa);
  ASSERT_EQ(r.status, 0) << r.out;
  {
    io::SafetensorsFile c(fa);
    Mat lc = testing::golden_matrix(c, "logits");
    EXPECT_GT((lc - la).norm() / la.norm(), 1e-4f);
    EXPECT_LT((lc - la).norm() / la.norm(), 0.6f);
    EXPECT_GT((lc - lb).norm() / lb.norm(), 1e-4f);
  }
  std::filesystem::remove(fa);
  EXPECT_EQ(run("forward --model tiny-random --ids 0,5 --precision fp8 --promote 7").status, 2);
  std::filesystem::remove(f32);
  std::filesystem::remove(f8);
}

}  // namespace
}  // namespace dsv3
