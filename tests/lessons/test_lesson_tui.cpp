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
#include <initializer_list>
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
  std::string wait_for(const std::string& text) { return wait_for_all({text}); }
  // Waits until the screen shows every one of `texts` at once (up to 20 s). A frame is drawn in
  // pieces (the status line may arrive before a step's body), so a test that checks several
  // parts of one frame waits for all of them rather than capturing after the first.
  std::string wait_for_all(std::initializer_list<std::string> texts) {
    std::string s;
    for (int i = 0; i < 200; ++i) {
      s = screen();
      bool all = true;
      for (const auto& t : texts) all = all && s.find(t) != std::string::npos;
      if (all) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::string missing;
    for (const auto& t : texts)
      if (s.find(t) == std::string::npos) missing += " '" + t + "'";
    ADD_FAILURE() << "never saw" << missing << " on:\n" << s;
    return s;
  }

  std::string socket_;
  std::string status_file_;
};

TEST_F(TmuxLesson, StepsForwardAndBackAndLeaves) {
  wait_for_all({"step 1/", "dsv3 lesson 3", "1. Shared and routed experts", "› info", "q leave"});

  keys("Right");
  wait_for_all({"step 2/", "2. Affinities", "› route 1"});

  keys("Space");
  wait_for_all({"step 3/", "3. Group-limited routing"});

  keys("Left");
  wait_for_all({"step 2/", "2. Affinities"});

  keys("r");
  wait_for_all({"re-run from a fresh session", "step 2/"});

  keys("Left");
  wait_for("step 1/");
  keys("Left");
  wait_for("this is the first step");

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
  wait_for_all({"dsv3 lesson 4", "step 1/", "n next lesson"});
  keys("q");
}

// A lesson by (part of) its name, as the help promises; the last lesson has no next one.
class TmuxLessonByName : public TmuxLesson {
 protected:
  std::string args() const override { return "lesson dual"; }
};

TEST_F(TmuxLessonByName, OpensByNameAndStopsAfterTheLast) {
  wait_for("dsv3 lesson 7");
  keys("n");
  wait_for("dsv3 lesson 8");
  keys("n");
  wait_for("dsv3 lesson 9");
  keys("n");
  wait_for_all({"this is the last lesson", "dsv3 lesson 9"});
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
  wait_for_all({"step 1/", "dsv3 lesson 3"});
  keys("Right");
  wait_for("step 2/");
  keys("q");
  wait_for_all({"left lesson 3", "1 Routing"});
  keys("q");
  for (int i = 0; i < 100 && !fs::exists(status_file_); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::ifstream st(status_file_);
  int status = -1;
  st >> status;
  EXPECT_EQ(status, 0);
}

}  // namespace
