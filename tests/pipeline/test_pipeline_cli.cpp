// `dsv3 pipeline ...` end to end: the built executable, its output and its exit status.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/support/shell.h"

namespace {

using CliRun = dsv3::test_support::ShellResult;

// Runs the dsv3 binary with `args` (stderr folded into stdout), not on a terminal.
CliRun dsv3(const std::string& args) {
  return dsv3::test_support::shell(std::string("NO_COLOR=1 '") + DSV3_BINARY + "' " + args +
                                   " 2>&1");
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "dsv3_pipeline_" + name;
}

TEST(PipelineCli, OpsPrintsOneLinePerRank) {
  CliRun r = dsv3("pipeline ops --schedule dualpipe --pp 4 --micro-batches 8");
  ASSERT_EQ(r.status, 0) << r.out;
  std::istringstream in(r.out);
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    EXPECT_EQ(line.rfind("rank " + std::to_string(count) + ": ", 0), 0u) << line;
    ++count;
  }
  EXPECT_EQ(count, 4);
  EXPECT_NE(r.out.find("rank 1: F0(mb0) F1(mb0) F0(mb1) F1(mb1) F0(mb2) B1(mb0) "
                       "FB(f:1/mb2,b:0/mb0)"),
            std::string::npos);
  CliRun j = dsv3("pipeline ops -s dualpipev -p 4 -n 8 --json");
  ASSERT_EQ(j.status, 0) << j.out;
  nlohmann::json doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["ops"].size(), 4u);
  EXPECT_EQ(doc["ops"][3][9], "B1(mb0)");
}

TEST(PipelineCli, SimulateJsonReproducesFigure5) {
  CliRun r = dsv3(
      "pipeline simulate --schedule dualpipe --pp 8 --micro-batches 20 "
      "--cost F=1,B=2,W=1,FB=3 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_DOUBLE_EQ(j["makespan"].get<double>(), 66);
  for (const auto& rank : j["per_rank"]) {
    EXPECT_DOUBLE_EQ(rank["bubble"].get<double>(), 6);
    EXPECT_EQ(rank["peak_activations"], 9);
  }
  EXPECT_DOUBLE_EQ(j["formula"]["bubble_value"].get<double>(), 6);
}

TEST(PipelineCli, SimulateTextAndFiles) {
  std::string trace = temp_path("trace.json"), svg = temp_path("fig5.svg");
  CliRun r = dsv3("pipeline simulate -s 1f1b -p 4 -n 8 --width 100 --chrome-trace '" + trace +
                  "' --svg '" + svg + "'");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.find("\x1b["), std::string::npos);  // not a terminal: plain text
  EXPECT_NE(r.out.find("1F1B · 4 ranks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(PP-1)(F+B) = 9"), std::string::npos) << r.out;
  std::ifstream t(trace);
  ASSERT_TRUE(t.good());
  nlohmann::json tj = nlohmann::json::parse(t);
  EXPECT_GT(tj["traceEvents"].size(), 64u);
  std::ifstream s(svg);
  std::string text((std::istreambuf_iterator<char>(s)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("</svg>"), std::string::npos);
}

// A makespan wider than --width is printed in bands of one column per time unit that cover it
// all, each with its range row, never squeezed into fractional columns.
TEST(PipelineCli, SimulateWideMakespanInBands) {
  CliRun r = dsv3("pipeline simulate -s dualpipev -p 8 -n 20 --width 80");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("DualPipeV · 16 stages on 8 ranks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("time 0–52 of 134"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("time 52–104 of 134"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("time 82–134 of 134"), std::string::npos) << r.out;  // the last band
  // Title once, legend once.
  EXPECT_EQ(r.out.find("DualPipeV ·"), r.out.rfind("DualPipeV ·"));
  EXPECT_EQ(r.out.find("weight grad"), r.out.rfind("weight grad"));
  // --zoom: more columns per unit, so more bands; --cursor: the one window around it.
  CliRun z = dsv3("pipeline simulate -s 1f1b -p 4 -n 8 --width 80 --zoom 3");
  ASSERT_EQ(z.status, 0) << z.out;
  EXPECT_NE(z.out.find("r0 F0 F1 F2 F3"), std::string::npos) << z.out;
  CliRun c = dsv3("pipeline simulate -s dualpipev -p 8 -n 20 --width 80 --cursor 100");
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("time 74–126 of 134"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("▼"), std::string::npos) << c.out;
  EXPECT_NE(dsv3("pipeline simulate --zoom 0.5").status, 0);
}

TEST(PipelineCli, CompareJson) {
  CliRun r = dsv3("pipeline compare --pp 8 --micro-batches 20 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 6u);
  EXPECT_EQ(j["rows"][1]["schedule"], "1f1b");
  EXPECT_DOUBLE_EQ(j["rows"][1]["bubble_max"].get<double>(), 21);
  EXPECT_DOUBLE_EQ(j["rows"][2]["bubble_max"].get<double>(), 7);
  CliRun t = dsv3("pipeline compare --pp 4 --micro-batches 8 --cost F=2,B=4,W=1,FB=5");
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_NE(t.out.find("estimate"), std::string::npos) << t.out;
  CliRun d = dsv3("pipeline compare --pp 4 --micro-batches 8 --timelines --width 100");
  ASSERT_EQ(d.status, 0) << d.out;
  EXPECT_NE(d.out.find("GPipe · 4 ranks"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("DualPipeV · 4 stages on 2 ranks"), std::string::npos) << d.out;
}

TEST(PipelineCli, ClearErrors) {
  CliRun odd = dsv3("pipeline simulate --schedule dualpipe --pp 3 --micro-batches 12");
  EXPECT_EQ(odd.status, 2);
  EXPECT_EQ(odd.out.rfind("dsv3: DualPipe needs an even number of ranks", 0), 0u) << odd.out;
  CliRun few = dsv3("pipeline ops --schedule dualpipev --pp 4 --micro-batches 6");
  EXPECT_EQ(few.status, 2);
  EXPECT_NE(few.out.find("N >= 2P"), std::string::npos) << few.out;
  CliRun cost = dsv3("pipeline simulate --cost F=1,W=5");
  EXPECT_EQ(cost.status, 2);
  EXPECT_NE(cost.out.find("W (5) cannot exceed"), std::string::npos) << cost.out;
  CliRun name = dsv3("pipeline ops --schedule chimera");
  EXPECT_EQ(name.status, 2);
  EXPECT_NE(name.out.find("unknown schedule 'chimera'"), std::string::npos) << name.out;
  CliRun mode = dsv3("pipeline simulate --mode fast");
  EXPECT_EQ(mode.status, 2);
}

TEST(PipelineCli, Overlap) {
  CliRun r = dsv3("pipeline overlap --width 100 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_LT(j["overlapped_time"].get<double>(), j["serial_time"].get<double>());
  CliRun t = dsv3("pipeline overlap --width 100 --costs dispatch_f=9");
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_NE(t.out.find("Figure 4"), std::string::npos);
  CliRun bad = dsv3("pipeline overlap --costs nope=1");
  EXPECT_EQ(bad.status, 2);
}

}  // namespace
