// `cmake --install` into a scratch prefix, then the installed dsv3 run from another working
// directory: it finds its configs, the trained tiny checkpoint and the lessons in
// PREFIX/share/dsv3, never in the source tree (DSV3_CMAKE_COMMAND and DSV3_BUILD_DIR come from
// the top-level CMakeLists.txt).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/support/shell.h"

namespace {

namespace fs = std::filesystem;
using dsv3::test_support::shell;
using dsv3::test_support::ShellResult;

std::string q(const fs::path& p) {
  return "'" + p.string() + "'";
}

class Installed : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("dsv3_install_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    prefix_ = root_ / "prefix";
    work_ = root_ / "elsewhere";
    fs::create_directories(work_);
    install_ = shell(q(DSV3_CMAKE_COMMAND) + " --install " + q(DSV3_BUILD_DIR) + " --prefix " +
                     q(prefix_) + " 2>&1");
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  void SetUp() override { ASSERT_EQ(install_.status, 0) << install_.out; }

  // `BINARY ARGS` run in a folder of its own, with no data override unless `env` sets one.
  static ShellResult run(const fs::path& binary, const std::string& args,
                         const std::string& env = "") {
    return shell("cd " + q(work_) + " && env -u DSV3_DATA_DIR -u DSV3_CONFIGS -u DSV3_LESSONS " +
                 env + " NO_COLOR=1 " + q(binary) + " " + args + " 2>&1 < /dev/null");
  }

  static inline fs::path root_, prefix_, work_;
  static inline ShellResult install_;
};

TEST_F(Installed, PutsTheBinaryAndItsDataUnderThePrefix) {
  EXPECT_TRUE(fs::is_regular_file(prefix_ / "bin" / "dsv3"));
  const fs::path data = prefix_ / "share" / "dsv3";
  for (const char* f : {"tiny-configs/tiny.json", "tiny-configs/deepseek-v3-671b.json",
                        "tiny-configs/official/config_671B.json", "tiny-configs/tiny/config.json",
                        "tiny-configs/tiny/model.safetensors", "tiny-configs/tiny/tokenizer.json",
                        "lessons/01-mla-kv-cache.md"})
    EXPECT_TRUE(fs::is_regular_file(data / f)) << f;
}

TEST_F(Installed, RunsFromAnotherDirectory) {
  const fs::path bin = prefix_ / "bin" / "dsv3";
  ShellResult r = run(bin, "info tiny");
  EXPECT_EQ(r.status, 0) << r.out;
  r = run(bin, "generate --prompt x -n 2");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("ids: "), std::string::npos) << r.out;
  r = run(bin, "lesson");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Multi-head Latent Attention"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find((prefix_ / "share" / "dsv3" / "lessons").string()), std::string::npos)
      << r.out;
  r = run(bin, "lesson 1 --plain");
  EXPECT_EQ(r.status, 0) << r.out;
}

// Without its share/dsv3 the installed binary fails with one line naming where it looked; it
// does not fall back to the source tree, so a broken install shows. DSV3_DATA_DIR overrides.
TEST_F(Installed, MissingOrWrongDataIsOneClearLine) {
  const fs::path bin = prefix_ / "bin" / "dsv3";
  const fs::path data = prefix_ / "share" / "dsv3", moved = root_ / "moved-data";
  ShellResult r = run(bin, "info tiny", "DSV3_DATA_DIR=" + q(root_ / "nowhere"));
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_EQ(r.out.rfind("dsv3: DSV3_DATA_DIR=" + (root_ / "nowhere").string() +
                            " has no tiny-configs/ folder",
                        0),
            0u)
      << r.out;
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << r.out;

  fs::rename(data, moved);
  r = run(bin, "info tiny");
  const ShellResult lessons = run(bin, "lesson");
  const ShellResult overridden = run(bin, "generate --prompt x -n 2", "DSV3_DATA_DIR=" + q(moved));
  fs::rename(moved, data);
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_EQ(r.out.rfind("dsv3: cannot find dsv3's data", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(data.string()), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(DSV3_SOURCE_DIR), std::string::npos)
      << "looked in the source tree: " << r.out;
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << r.out;
  EXPECT_NE(lessons.status, 0) << lessons.out;
  EXPECT_NE(lessons.out.find("cannot find dsv3's data"), std::string::npos) << lessons.out;
  EXPECT_EQ(overridden.status, 0) << overridden.out;
}

// The build-tree binary keeps reading the source tree, from any working directory.
TEST_F(Installed, BuildTreeBinaryWorksFromAnyDirectory) {
  ShellResult r = run(DSV3_BINARY, "info tiny");
  EXPECT_EQ(r.status, 0) << r.out;
  r = run(DSV3_BINARY, "lesson");
  EXPECT_EQ(r.status, 0) << r.out;
}

}  // namespace
