// `--weights native` on the command line (issue 18): the same tokens as float32, a report of
// what the stored weights cost, and one clear line with exit code 2 for a bad value.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
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

// `dsv3 export synthetic-v3` writes the released layout at the size asked for, and the model it
// writes runs as stored with the same tokens as in float32.
TEST(NativeCli, ExportSyntheticV3WritesACheckpointThatRunsAsStored) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("dsv3-export-syn-" + std::to_string(getpid()));
  fs::remove_all(dir);
  const auto w = test_support::dsv3_cli(
      "export synthetic-v3 --out '" + dir.string() +
      "' --layers 4 --experts 16 --hidden 128 --intermediate 256 --moe-intermediate 64 --heads 2 "
      "--q-lora-rank 96 --kv-lora-rank 64 --vocab 512 --shards 3 --seed 7");
  ASSERT_EQ(w.status, 0) << w.out;
  EXPECT_NE(w.out.find("3 shards"), std::string::npos) << w.out;
  EXPECT_TRUE(fs::exists(dir / "config.json"));
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  for (int k = 1; k <= 3; ++k)
    EXPECT_TRUE(fs::exists(dir / ("model-0000" + std::to_string(k) + "-of-00003.safetensors")));
  const std::string gen = "generate --model '" + dir.string() + "' --prompt 'ab' -n 4";
  const auto f32 = test_support::dsv3_cli(gen);
  const auto native = test_support::dsv3_cli(gen + " --weights native");
  ASSERT_EQ(f32.status, 0) << f32.out;
  ASSERT_EQ(native.status, 0) << native.out;
  auto ids = [](const std::string& out) {
    const size_t at = out.find("ids: ");
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  EXPECT_FALSE(ids(native.out).empty()) << native.out;
  EXPECT_EQ(ids(native.out), ids(f32.out));
  // A folder that already holds a checkpoint is not overwritten; sizes V3 cannot have are refused.
  const auto again = test_support::dsv3_cli("export synthetic-v3 --out '" + dir.string() + "'");
  EXPECT_EQ(again.status, 2) << again.out;
  EXPECT_NE(again.out.find("already holds a checkpoint"), std::string::npos) << again.out;
  const auto bad = test_support::dsv3_cli("export synthetic-v3 --out '" + dir.string() +
                                          "-bad' --experts 12 --hidden 64 --vocab 64");
  EXPECT_EQ(bad.status, 2) << bad.out;
  EXPECT_NE(bad.out.find("n_group"), std::string::npos) << bad.out;
  fs::remove_all(dir);
  fs::remove_all(dir.string() + "-bad");
}

}  // namespace
}  // namespace dsv3
