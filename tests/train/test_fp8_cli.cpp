// `dsv3 train --precision` and `dsv3 fp8 train-compare` as a user runs them: the JSON shape on a
// few steps of a small model, the files written, and one-line errors with exit status 2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"

namespace dsv3::train {
namespace {
namespace fs = std::filesystem;
using test_support::dsv3_cli;

const std::string kData = DSV3_TEST_DATA;

fs::path temp_dir(const std::string& name) {
  return test_support::fresh_temp_dir("dsv3_fp8cli_", name);
}

int lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

TEST(Fp8TrainCli, TrainCompareJsonHasTheIssuesShape) {
  const fs::path dir = temp_dir("compare");
  const std::string batch = kData + "/train-ref/batch.safetensors";
  // stdout alone: progress goes to stderr.
  auto r = test_support::shell("'" + std::string(DSV3_BINARY) +
                               "' fp8 train-compare --model tiny-random --data " + batch +
                               " --steps 3 --modes fp8:t32,fp32 --seed 1 --json --out " +
                               (dir / "c").string() + " 2>/dev/null </dev/null");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["baseline"]["mode"], "bf16");
  EXPECT_TRUE(j["baseline"]["final_loss"].is_number());
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][0]["mode"], "fp8:t32");
  for (const auto& run : j["runs"]) {
    EXPECT_TRUE(run["final_loss"].is_number());
    EXPECT_LT(std::abs(run["relative_gap"].get<double>()), 0.05);
  }
  for (const char* f : {"train-compare.svg", "train-compare.md", "train-compare.json"})
    EXPECT_TRUE(fs::exists(dir / "c" / f)) << f;
  EXPECT_TRUE(fs::exists(dir / "c" / "fp8-t32" / "trainer_state.json"));
  fs::remove_all(dir);
}

TEST(Fp8TrainCli, TrainRunsInFp8) {
  const fs::path dir = temp_dir("train");
  const std::string batch = kData + "/train-ref/batch.safetensors";
  auto r = dsv3_cli("train --model tiny-random --data " + batch +
                    " --steps 2 --lr 1e-3 --precision fp8 --fp8-tile 32 --save " +
                    (dir / "run").string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(fs::exists(dir / "run" / "trainer_state.json"));
  fs::remove_all(dir);
}

TEST(Fp8TrainCli, BadArgumentsGetOneLineAndExitTwo) {
  const fs::path dir = temp_dir("args");
  const std::string batch = kData + "/train-ref/batch.safetensors";
  const std::string save = " --save " + (dir / "x").string();
  const std::string cmp = "fp8 train-compare --model tiny-random --data " + batch;
  const std::string out = " --out " + (dir / "y").string();
  for (const std::string& args : {
           "train --model tiny-random --data " + batch + " --steps 2 --lr 1e-3 --precision fp16" +
               save,
           "train --model tiny-random --data " + batch +
               " --steps 2 --lr 1e-3 --precision fp8 --fp8-tile 48" + save,
           "train --model tiny-random --data " + batch +
               " --steps 2 --lr 1e-3 --precision fp8 --fp8-promote 96" + save,
           "train --model tiny-random --data " + batch +
               " --steps 2 --lr 1e-3 --precision fp8 --fp8-grad-format e3m4" + save,
           cmp + " --steps 2 --modes fp8:t33" + out,
           cmp + " --steps 2 --modes fp8,fp8" + out,
           cmp + " --steps 2 --modes bf16:tensor" + out,
           cmp + " --steps 0" + out,
           "fp8 train-compare --model tiny-random --data /nonexistent.safetensors --steps 2" + out,
           "fp8 train-compare --model nosuchmodel --data " + batch + " --steps 2" + out,
       }) {
    auto r = dsv3_cli(args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.out;
    EXPECT_EQ(lines(r.out), 1) << args << "\n" << r.out;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3::train
