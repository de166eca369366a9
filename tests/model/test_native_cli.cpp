// `--weights native` on the command line (issue 18): the same tokens as float32, a report of
// what the stored weights cost, and one clear line with exit code 2 for a bad value.
#include <gtest/gtest.h>

#include <string>

#include "tests/support/shell.h"

namespace dsv3 {
namespace {

TEST(NativeCli, GenerateOnStoredWeightsGivesTheFloat32Tokens) {
  const auto f32 = test_support::dsv3_cli("generate --model tiny --prompt 'The cat' -n 6");
  const auto native =
      test_support::dsv3_cli("generate --model tiny --prompt 'The cat' -n 6 --weights native");
  ASSERT_EQ(f32.status, 0) << f32.out;
  ASSERT_EQ(native.status, 0) << native.out;
  auto ids = [](const std::string& out) {
    const size_t at = out.find("ids: ");
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  EXPECT_FALSE(ids(f32.out).empty()) << f32.out;
  EXPECT_EQ(ids(native.out), ids(f32.out));
  EXPECT_NE(native.out.find("weights: native"), std::string::npos) << native.out;
  EXPECT_EQ(f32.out.find("weights: native"), std::string::npos) << f32.out;
}

TEST(NativeCli, BadValuesAreOneLineAndExitTwo) {
  const auto bad = test_support::dsv3_cli("generate --model tiny -n 1 --weights fp4");
  EXPECT_EQ(bad.status, 2) << bad.out;
  const auto random = test_support::dsv3_cli("generate --model small -n 1 --weights native");
  EXPECT_EQ(random.status, 2) << random.out;
  EXPECT_NE(random.out.find("--weights native needs a checkpoint folder"), std::string::npos)
      << random.out;
}

}  // namespace
}  // namespace dsv3
