// `dsv3 train ... --tui` in a real terminal (tmux, 80x24): the run starts on panel 9, `p`
// pauses it, `+` doubles γ (logged with its step), `p` resumes, `q` stops after the step in
// progress and keeps that step's checkpoint. `--replay LOG --compare aux`: the logged changes
// land at their steps in both runs, `o` opens the last step's weights in the other panels.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "reference/train/live_run.h"
#include "tests/support/shell.h"

namespace {
namespace fs = std::filesystem;
using dsv3::test_support::shell;

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A private tmux server running one command; the pane stays open after it ends.
class Pane {
 public:
  Pane(const std::string& command, int cols, int rows) {
    static int panes = 0;  // one server per pane: a socket is never reused while it shuts down
    name_ = "dsv3train_" + std::to_string(::getpid()) + "_" + std::to_string(++panes);
    shell(tmux() + " -f /dev/null new-session -d -s main -x " + std::to_string(cols) + " -y " +
          std::to_string(rows) + " " +
          quote("env LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=xterm-256color " + command +
                "; echo EXIT=$?; sleep 60"));
  }
  ~Pane() { shell(tmux() + " kill-server 2>/dev/null"); }
  std::string tmux() const { return "tmux -L " + name_; }
  std::string screen() const { return shell(tmux() + " capture-pane -p -t main").out; }
  void keys(const std::string& k) const { shell(tmux() + " send-keys -t main " + k); }
  // Polls until `pred` holds on the screen or 20 s pass.
  template <class F>
  bool wait(F pred) const {
    for (int i = 0; i < 400; ++i) {
      if (pred(screen())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  bool wait_for(const std::string& text) const {
    return wait([&](const std::string& s) { return s.find(text) != std::string::npos; });
  }

 private:
  std::string name_;
};

int shown_step(const std::string& screen) {
  std::smatch m;
  return std::regex_search(screen, m, std::regex("step (\\d+)/")) ? std::stoi(m[1]) : -1;
}

TEST(TrainTui, StartPauseChangeGammaResumeAndQuit) {
  if (shell("command -v tmux >/dev/null 2>&1").status != 0) GTEST_SKIP() << "tmux not installed";
  const fs::path dir = fs::temp_directory_path() / ("dsv3_train_tui_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string data = (dir / "demo.safetensors").string();
  dsv3::train::write_demo_stream(data);
  const std::string save = (dir / "run").string();
  Pane p(std::string(DSV3_BINARY) + " train --model tiny-random --data " + data +
             " --steps 5000 --lr 3e-3 --batch 2 --seq-len 32 --save-every 1000 --save " + save +
             " --tui",
         80, 24);
  ASSERT_TRUE(p.wait_for("9 Train")) << p.screen();
  ASSERT_TRUE(p.wait([](const std::string& s) { return shown_step(s) >= 2; })) << p.screen();
  p.keys("p");
  ASSERT_TRUE(p.wait_for("paused ·")) << p.screen();
  // Paused: the step stays where it is.
  const int paused_at = shown_step(p.screen());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(shown_step(p.screen()), paused_at);
  p.keys("+");
  ASSERT_TRUE(p.wait_for("γ=0.002")) << p.screen();
  p.keys("p");
  ASSERT_TRUE(p.wait([&](const std::string& s) { return shown_step(s) >= paused_at + 2; }))
      << p.screen();
  p.keys("q");
  ASSERT_TRUE(p.wait_for("EXIT=")) << p.screen();
  EXPECT_NE(p.screen().find("EXIT=0"), std::string::npos) << p.screen();
  // The last step's checkpoint is there, and the change is in the log with its step.
  std::ifstream st(fs::path(save) / "trainer_state.json");
  const int64_t saved = nlohmann::json::parse(st).at("step").get<int64_t>();
  EXPECT_GE(saved, paused_at + 2);
  auto changes = dsv3::train::read_changes(save + "/log.jsonl");
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].key, "bias_gamma");
  EXPECT_EQ(changes[0].value, "0.002");
  EXPECT_EQ(changes[0].step, paused_at);
  fs::remove_all(dir);
}

TEST(TrainTui, ReplayACompareRunAndOpenItsWeights) {
  if (shell("command -v tmux >/dev/null 2>&1").status != 0) GTEST_SKIP() << "tmux not installed";
  const fs::path dir =
      fs::temp_directory_path() / ("dsv3_train_tui_replay_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string data = (dir / "demo.safetensors").string();
  dsv3::train::write_demo_stream(data);
  // The recorded run of tests/data/train-live: balancing off, then loss-free with γ = 0.01 from
  // step 21.
  const std::string log = std::string(DSV3_TEST_DATA) + "/train-live/log.jsonl";
  const std::string save = (dir / "run").string();
  Pane p(std::string(DSV3_BINARY) + " train --model tiny-random --data " + data +
             " --steps 30 --lr 3e-3 --batch 2 --seq-len 32 --balance none --save-every 1000 "
             "--save " +
             save + " --tui --compare fp32 --precision bf16 --replay " + log,
         80, 24);
  ASSERT_TRUE(p.wait_for("9 Train")) << p.screen();
  ASSERT_TRUE(p.wait([](const std::string& s) {
    size_t first = s.find("done step 30/30");
    return first != std::string::npos && s.find("done step 30/30", first + 1) != std::string::npos;
  })) << p.screen();
  EXPECT_NE(p.screen().find("● bf16 vs ○ fp32"), std::string::npos) << p.screen();
  p.keys("o");
  ASSERT_TRUE(p.wait_for("tiny-random @ step 30 of")) << p.screen();
  EXPECT_NE(p.screen().find("panels 1-8: step 30's weights"), std::string::npos) << p.screen();
  p.keys("1");  // the routing panel, under step 30's weights: the header still names them
  ASSERT_TRUE(p.wait_for("1 Routing")) << p.screen();
  EXPECT_NE(p.screen().find("@ step 30 of"), std::string::npos) << p.screen();
  p.keys("q");
  ASSERT_TRUE(p.wait_for("EXIT=")) << p.screen();
  EXPECT_NE(p.screen().find("EXIT=0"), std::string::npos) << p.screen();
  // Both runs replayed the two changes before step 21 and logged them again.
  for (const std::string& run : {save, save + "-fp32"}) {
    auto changes = dsv3::train::read_changes(run + "/log.jsonl");
    ASSERT_EQ(changes.size(), 2u) << run;
    EXPECT_EQ(changes[0].step, 20);
    EXPECT_EQ(changes[0].key, "balance");
    EXPECT_EQ(changes[1].value, "0.01");
    const auto snap = dsv3::train::snapshot_from_log(run);
    ASSERT_EQ(snap.history.size(), 30u);
    EXPECT_DOUBLE_EQ(snap.history[19].bias_gamma, 0.0);
    EXPECT_DOUBLE_EQ(snap.history[20].bias_gamma, 0.01);
  }
  fs::remove_all(dir);
}

}  // namespace
