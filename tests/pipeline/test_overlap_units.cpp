// The unit of the Figure 4 overlap times: derive_block_costs works in milliseconds, the command
// line says so, and lesson 7 quotes pp-overlap's numbers with that unit (issue 16: the lesson
// said µs for numbers that are ms).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>

#include "reference/model/config.h"
#include "reference/pipeline/overlap.h"
#include "tests/support/shell.h"

namespace dsv3 {
namespace {

TEST(OverlapUnits, DerivedBlockCostsAreMilliseconds) {
  const model::Config c = model::resolve_config("v3-671b");
  const pipeline::HardwareModel hw;  // 4096 tokens, 400 TFLOP/s, 50 GB/s
  const pipeline::BlockCosts b = pipeline::derive_block_costs(c, hw);
  // One MoE block's experts, by hand: 8 routed + 1 shared SwiGLU experts of width 2048 on
  // d = 7168 (3 matrices, 2 FLOPs per multiply-add), plus the 256-expert gate.
  const double flops_per_token = 9.0 * 3 * 2 * 7168 * 2048 + 2.0 * 7168 * 256;
  const double seconds = 4096 * flops_per_token / 400e12;
  EXPECT_NEAR(b.mlp_f, seconds * 1e3, 1e-9);  // ~10 ms, not ~10 µs
  // The FP8 dispatch: 4096 tokens x 4 nodes (topk_group) x 7168 bytes at 50 GB/s.
  EXPECT_NEAR(b.dispatch_f, 4096.0 * 4 * 7168 / 50e9 * 1e3, 1e-9);
}

TEST(OverlapUnits, CommandSaysMilliseconds) {
  const auto r = test_support::dsv3_cli("pipeline overlap --config v3-671b --width 80");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("(times in ms)"), std::string::npos) << r.out;
}

TEST(OverlapUnits, LessonQuotesOverlapTimesInMilliseconds) {
  std::ifstream in(std::string(DSV3_TEST_DATA) + "/../../lessons/07-dualpipe.md");
  ASSERT_TRUE(in) << "lessons/07-dualpipe.md";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  // Every interpolated pp-overlap time ({{o.serial_time:.0f}}, ...) is followed by its unit.
  const std::regex time_ref(R"(\{\{o\.(serial|overlapped|compute|comm)_time[^}]*\}\}\s*(\S+))");
  int found = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), time_ref);
       it != std::sregex_iterator(); ++it) {
    const std::string unit = (*it)[2].str();
    EXPECT_EQ(unit.substr(0, 2), "ms") << it->str();
    EXPECT_NE(unit.substr(0, 2), "µ") << it->str();
    ++found;
  }
  EXPECT_GE(found, 2) << "lesson 7 no longer quotes serial_time and overlapped_time";
  // And pp-overlap (the lesson's `o`) reports the times derived in milliseconds above.
  const auto r = test_support::dsv3_cli("exec 'pp-overlap --json'");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  const pipeline::OverlapResult o = pipeline::simulate_overlap(
      pipeline::derive_block_costs(model::resolve_config("v3-671b"), pipeline::HardwareModel{}));
  EXPECT_NEAR(j.at("serial_time").get<double>(), o.serial_time, 1e-9);
  EXPECT_NEAR(j.at("overlapped_time").get<double>(), o.overlapped_time, 1e-9);
}

}  // namespace
}  // namespace dsv3
