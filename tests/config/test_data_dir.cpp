// Where dsv3 finds its data (tiny-configs/, lessons/): $DSV3_DATA_DIR, the installed
// ../share/dsv3 beside bin/, or the source tree for a build-tree binary (config.h, data_dir()).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "reference/model/config.h"

namespace dsv3::model {
namespace {

namespace fs = std::filesystem;

// Clears the overrides for the test and puts them back after it.
class DataDir : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : {"DSV3_DATA_DIR", "DSV3_CONFIGS"}) {
      if (const char* s = std::getenv(v)) saved_.emplace_back(v, s);
      ::unsetenv(v);
    }
    scratch_ = fs::temp_directory_path() / ("dsv3_data_dir_" + std::to_string(::getpid()));
    fs::create_directories(scratch_);
  }
  void TearDown() override {
    ::unsetenv("DSV3_DATA_DIR");
    for (const auto& [k, v] : saved_) ::setenv(k.c_str(), v.c_str(), 1);
    fs::remove_all(scratch_);
  }
  std::vector<std::pair<std::string, std::string>> saved_;
  fs::path scratch_;
};

// A test binary lives in the build tree: it reads the source tree, from any working directory.
TEST_F(DataDir, BuildTreeBinaryReadsTheSourceTree) {
  EXPECT_TRUE(fs::equivalent(data_dir(), DSV3_SOURCE_DIR));
  const fs::path cwd = fs::current_path();
  fs::current_path(scratch_);
  EXPECT_TRUE(fs::equivalent(data_dir(), DSV3_SOURCE_DIR));
  EXPECT_EQ(resolve_config("tiny-random").name, "tiny-random");
  fs::current_path(cwd);
  EXPECT_TRUE(fs::equivalent(tiny_configs_dir(), fs::path(DSV3_SOURCE_DIR) / "tiny-configs"));
}

TEST_F(DataDir, EnvironmentOverrides) {
  fs::create_directories(scratch_ / "tiny-configs");
  std::ofstream(scratch_ / "tiny-configs" / "tiny.json")
      << std::ifstream(std::string(DSV3_SOURCE_DIR) + "/tiny-configs/tiny.json").rdbuf();
  ::setenv("DSV3_DATA_DIR", scratch_.c_str(), 1);
  EXPECT_EQ(data_dir(), scratch_.string());
  EXPECT_EQ(tiny_configs_dir(), (scratch_ / "tiny-configs").string());
  EXPECT_EQ(resolve_config("tiny-random").source,
            (scratch_ / "tiny-configs" / "tiny.json").string());
}

// A wrong DSV3_DATA_DIR is an error naming it, never a silent fall-back to another folder.
TEST_F(DataDir, WrongEnvironmentIsOneClearLine) {
  const std::string wrong = (scratch_ / "nowhere").string();
  ::setenv("DSV3_DATA_DIR", wrong.c_str(), 1);
  try {
    data_dir();
    FAIL() << "a folder without tiny-configs/ was accepted";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("DSV3_DATA_DIR=" + wrong + " has no tiny-configs/ folder", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_THROW(resolve_config("tiny"), ConfigError);
  // Paths are not built-in names: they never need the data folder.
  EXPECT_NO_THROW(resolve_config(std::string(DSV3_SOURCE_DIR) + "/tiny-configs/tiny.json"));
}

}  // namespace
}  // namespace dsv3::model
