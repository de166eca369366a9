// `dsv3 balance ...` end to end: JSON keys, exit status on bad input.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/shell.h"

namespace {

using CmdResult = dsv3::test_support::ShellResult;

CmdResult run_cmd(const std::string& args) {
  return dsv3::test_support::dsv3_cli(args);
}

TEST(CliBalance, SimulateJson) {
  const CmdResult r = run_cmd(
      "balance simulate --steps 40 --tokens-per-batch 512 --heldout 2048 --gamma 1e-2 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["maxvio_batch"].size(), 40u);
  EXPECT_TRUE(j["maxvio_global"].is_number());
  EXPECT_EQ(j["bias"].size(), 64u);
  EXPECT_EQ(j["load"].size(), 64u);
  EXPECT_GT(j["maxvio_batch"].front().get<double>(), j["maxvio_batch"].back().get<double>());
}

TEST(CliBalance, SimulatePlotsAndRejectsBadInput) {
  const CmdResult r = run_cmd(
      "balance simulate --steps 20 --tokens-per-batch 256 --heldout 1024 --no-color --width 60");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("MaxVio_batch"), std::string::npos);
  EXPECT_NE(r.out.find("noise floor"), std::string::npos);
  const CmdResult bad = run_cmd("balance simulate --rule bogus");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.out.find("dsv3: "), std::string::npos);
  EXPECT_EQ(run_cmd("balance simulate --experts 10 --top-k 20").status, 2);
}

TEST(CliBalance, TradeoffAndModelJson) {
  const CmdResult t =
      run_cmd("balance tradeoff --alphas 0.1 --gammas 1e-3 --steps 30 --eval-tokens 512 --json");
  ASSERT_EQ(t.status, 0) << t.out;
  const auto j = nlohmann::json::parse(t.out);
  ASSERT_EQ(j["points"].size(), 3u);
  EXPECT_EQ(j["points"][1]["method"], "aux-loss");
  EXPECT_EQ(j["points"][2]["method"], "loss-free");
  const CmdResult m = run_cmd(
      "balance model --model tiny-random --tokens 128 --tokens-per-batch 64 --heldout 64 --json");
  ASSERT_EQ(m.status, 0) << m.out;
  const auto k = nlohmann::json::parse(m.out);
  EXPECT_EQ(k["maxvio_batch"].size(), 2u);
  EXPECT_FALSE(k["bias"].empty());
}

}  // namespace
