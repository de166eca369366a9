// The lesson player in a real terminal: `dsv3 lesson 3` in tmux (a private server socket),
// stepping forward and back, re-running a step, and leaving with q.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "tests/support/shell.h"

namespace {

namespace fs = std::filesystem;

const std::string kLessons = std::string(DSV3_TEST_DATA) + "/../../lessons";

std::string capture(const std::string& cmd) {
  return dsv3::test_support::shell(cmd + " 2>/dev/null").out;
}

class TmuxLesson : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v tmux >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "tmux is not installed";
    // One tmux server per test: the previous test's server may still be shutting down after
    // kill-server, and a new session on its socket then fails.
    static int counter = 0;
    socket_ = "dsv3-lesson-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
    status_file_ = (fs::temp_directory_path() / (socket_ + ".status")).string();
    fs::remove(status_file_);
    std::string inner = "DSV3_LESSONS='" + kLessons + "' TERM=xterm-256color '" +
                        std::string(DSV3_BINARY) + "' " + args() + "; echo $? > '" + status_file_ +
                        "'; sleep 30";
    std::string cmd = tmux() + " new-session -d -x 100 -y 30 -s lesson \"" + inner + "\"";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  void TearDown() override {
    if (!socket_.empty()) std::system((tmux() + " kill-server >/dev/null 2>&1").c_str());
    if (!status_file_.empty()) fs::remove(status_file_);
  }
  virtual std::string args() const { return "lesson 3"; }
  std::string tmux() const { return "tmux -L " + socket_ + " -f /dev/null"; }
  std::string screen() { return capture(tmux() + " capture-pane -p -t lesson"); }
  void keys(const std::string& k) { std::system((tmux() + " send-keys -t lesson " + k).c_str()); }
  // Waits until the screen shows `text` (up to 20 s); returns the last screen.
  std::string wait_for(const std::string& text) {
    std::string s;
    for (int i = 0; i < 200; ++i) {
      s = screen();
      if (s.find(text) != std::string::npos) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "never saw '" << text << "' on:\n" << s;
    return s;
  }

  std::string socket_;
  std::string status_file_;
};

TEST_F(TmuxLesson, StepsForwardAndBackAndLeaves) {
  std::string s = wait_for("step 1/");
  EXPECT_NE(s.find("dsv3 lesson 3"), std::string::npos) << s;
  EXPECT_NE(s.find("1. Shared and routed experts"), std::string::npos) << s;
  EXPECT_NE(s.find("› info"), std::string::npos) << s;
  EXPECT_NE(s.find("q leave"), std::string::npos) << s;

  keys("Right");
  s = wait_for("step 2/");
  EXPECT_NE(s.find("2. Affinities"), std::string::npos) << s;
  EXPECT_NE(s.find("› route 1"), std::string::npos) << s;

  keys("Space");
  s = wait_for("step 3/");
  EXPECT_NE(s.find("3. Group-limited routing"), std::string::npos) << s;

  keys("Left");
  s = wait_for("step 2/");
  EXPECT_NE(s.find("2. Affinities"), std::string::npos) << s;

  keys("r");
  s = wait_for("re-run from a fresh session");
  EXPECT_NE(s.find("step 2/"), std::string::npos) << s;

  keys("Left");
  s = wait_for("step 1/");
  keys("Left");
  s = wait_for("this is the first step");

  keys("q");
  for (int i = 0; i < 100 && !fs::exists(status_file_); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::ifstream st(status_file_);
  int status = -1;
  st >> status;
  EXPECT_EQ(status, 0);
}

TEST_F(TmuxLesson, SmallTerminalShowsTheSizeNeeded) {
  wait_for("step 1/");
  std::system((tmux() + " resize-window -t lesson -x 60 -y 20 >/dev/null 2>&1").c_str());
  std::string s = wait_for("needs 80x24");
  EXPECT_EQ(s.find("q leave"), std::string::npos) << s;
  std::system((tmux() + " resize-window -t lesson -x 100 -y 30 >/dev/null 2>&1").c_str());
  s = wait_for("q leave");
  keys("q");
}

// `n` opens the next lesson at its first step; the status line said "computing" meanwhile.
TEST_F(TmuxLesson, NOpensTheNextLesson) {
  wait_for("step 1/");
  keys("Right");
  wait_for("step 2/");
  keys("n");
  std::string s = wait_for("dsv3 lesson 4");
  s = wait_for("step 1/");
  EXPECT_NE(s.find("n next lesson"), std::string::npos) << s;
  keys("q");
}

// A lesson by (part of) its name, as the help promises; the last lesson has no next one.
class TmuxLessonByName : public TmuxLesson {
 protected:
  std::string args() const override { return "lesson dual"; }
};

TEST_F(TmuxLessonByName, OpensByNameAndStopsAfterTheLast) {
  std::string s = wait_for("dsv3 lesson 7");
  keys("n");
  s = wait_for("dsv3 lesson 8");
  keys("n");
  s = wait_for("dsv3 lesson 9");
  keys("n");
  s = wait_for("this is the last lesson");
  EXPECT_NE(s.find("dsv3 lesson 9"), std::string::npos) << s;
  keys("q");
}

// `:lesson 3` inside the explorer opens the same player; q returns to the explorer.
class TmuxExplorer : public TmuxLesson {
 protected:
  std::string args() const override { return "explore"; }
};

TEST_F(TmuxExplorer, ColonLessonOpensThePlayerAndReturns) {
  wait_for("1 Routing");
  keys("':lesson 3' Enter");
  std::string s = wait_for("step 1/");
  EXPECT_NE(s.find("dsv3 lesson 3"), std::string::npos) << s;
  keys("Right");
  wait_for("step 2/");
  keys("q");
  s = wait_for("left lesson 3");
  EXPECT_NE(s.find("1 Routing"), std::string::npos) << s;
  keys("q");
  for (int i = 0; i < 100 && !fs::exists(status_file_); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::ifstream st(status_file_);
  int status = -1;
  st >> status;
  EXPECT_EQ(status, 0);
}

}  // namespace
