// End to end in a real terminal: the built dsv3 runs inside tmux (a private server per test,
// 100x30), keys go in with send-keys, and the screen comes back with capture-pane. The REPL is
// also driven through a pipe.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include "tests/support/shell.h"

namespace {

namespace fs = std::filesystem;

using Result = dsv3::test_support::ShellResult;

Result sh(const std::string& cmd) {
  return dsv3::test_support::shell(cmd);
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

bool have_tmux() {
  return sh("command -v tmux >/dev/null 2>&1").status == 0;
}

// One tmux server of our own (-L) with one session running `command`; killed on destruction.
class Tmux {
 public:
  Tmux(const std::string& command, int cols = 100, int rows = 30) {
    static int counter = 0;
    name_ = "dsv3e2e_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    state_ = fs::temp_directory_path() / name_;
    fs::create_directories(state_);
    // The shell prints the exit status after dsv3 ends and keeps the pane open to read it.
    std::string inner =
        "env LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=xterm-256color XDG_STATE_HOME=" + state_.string() +
        " " + command + "; echo EXIT=$?; sleep 60";
    sh(tmux() + " -f /dev/null new-session -d -s main -x " + std::to_string(cols) + " -y " +
       std::to_string(rows) + " " + quote(inner));
  }
  ~Tmux() {
    sh(tmux() + " kill-server 2>/dev/null");
    std::error_code ec;
    fs::remove_all(state_, ec);
  }
  std::string tmux() const { return "tmux -L " + name_; }
  std::string screen(bool escapes = false) const {
    return sh(tmux() + " capture-pane -p " + (escapes ? "-e " : "") + "-t main").out;
  }
  void keys(const std::string& k) const { sh(tmux() + " send-keys -t main " + k); }
  void type(const std::string& text) const { sh(tmux() + " send-keys -t main -l " + quote(text)); }
  void resize(int cols, int rows) const {
    sh(tmux() + " resize-window -t main -x " + std::to_string(cols) + " -y " +
       std::to_string(rows));
  }
  // Polls the screen until `text` shows up (true) or 10 s pass (false).
  bool wait_for(const std::string& text, bool present = true) const {
    for (int i = 0; i < 200; ++i) {
      if ((screen().find(text) != std::string::npos) == present) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  const fs::path& state() const { return state_; }

 private:
  std::string name_;
  fs::path state_;
};

const std::string kBin = DSV3_BINARY;

// A value in the header such as "pos 51/51".
std::string header(const Tmux& t) {
  std::string s = t.screen();
  return s.substr(0, s.find('\n'));
}

TEST(Explorer, PanelsSteppingHelpCommandResizeAndQuit) {
  if (!have_tmux()) GTEST_SKIP() << "tmux not installed";
  // The default model: the trained tiny checkpoint, whose BPE tokenizer reads "Hello MoE" as
  // BOS + 6 tokens, and whose header carries no "random weights" badge.
  Tmux t(kBin + " explore --prompt 'Hello MoE'");
  ASSERT_TRUE(t.wait_for("dsv3 explorer")) << t.screen();
  std::string s = t.screen();
  for (const char* want : {"1 Routing", "2 Expert load", "3 KV cache", "tokens · prompt 7",
                           "● chosen", "expert", "L3"})
    EXPECT_NE(s.find(want), std::string::npos) << want << "\n" << s;
  EXPECT_NE(header(t).find("pos 6/6"), std::string::npos) << header(t);
  EXPECT_NE(header(t).find("tiny · 4 layers · 32 experts"), std::string::npos) << header(t);
  EXPECT_EQ(header(t).find("random"), std::string::npos) << header(t);

  // Step forward: a new token is computed and the routing grid shows the new position.
  t.keys("Right");
  ASSERT_TRUE(t.wait_for("pos 7/7")) << t.screen();
  EXPECT_NE(t.screen().find("generated 1"), std::string::npos);
  EXPECT_NE(t.screen().find("at position 7"), std::string::npos);
  // Step back: an earlier trace, nothing recomputed.
  t.keys("Left");
  ASSERT_TRUE(t.wait_for("pos 6/7")) << t.screen();
  EXPECT_NE(t.screen().find("at position 6"), std::string::npos);

  // Panels by number.
  t.keys("3");
  ASSERT_TRUE(t.wait_for("At real scale")) << t.screen();

  // Help overlay from the key table.
  t.keys("?");
  ASSERT_TRUE(t.wait_for("Keys · dsv3 explorer")) << t.screen();
  EXPECT_NE(t.screen().find("step back"), std::string::npos);
  t.keys("Escape");
  ASSERT_TRUE(t.wait_for("Keys · dsv3 explorer", false)) << t.screen();

  // The command prompt runs registry commands.
  t.type(":route 1");
  ASSERT_TRUE(t.wait_for(":route 1")) << t.screen();
  t.keys("Enter");
  ASSERT_TRUE(t.wait_for("Layer 1 gate")) << t.screen();
  t.type(":rute");
  t.keys("Enter");
  ASSERT_TRUE(t.wait_for("did you mean 'route'")) << t.screen();

  // Too small, then back.
  t.resize(40, 12);
  ASSERT_TRUE(t.wait_for("Terminal too small")) << t.screen();
  EXPECT_NE(t.screen().find("needs 80x24"), std::string::npos);
  t.resize(100, 30);
  ASSERT_TRUE(t.wait_for("dsv3 explorer")) << t.screen();
  EXPECT_EQ(t.screen().find("Terminal too small"), std::string::npos);

  t.keys("q");
  ASSERT_TRUE(t.wait_for("EXIT=0")) << t.screen();
  // The alternate screen is gone: the terminal is back to the shell's output.
  EXPECT_EQ(t.screen().find("dsv3 explorer"), std::string::npos) << t.screen();
}

TEST(Explorer, LivePanelsBalancingPipelineMtpAndFp8) {
  if (!have_tmux()) GTEST_SKIP() << "tmux not installed";
  Tmux t(kBin + " explore --prompt 'Hello MoE'");
  ASSERT_TRUE(t.wait_for("dsv3 explorer")) << t.screen();
  // Load panel: b turns balancing on, + raises γ, stepping updates the biases.
  t.keys("2");
  ASSERT_TRUE(t.wait_for("balancing off")) << t.screen();
  t.keys("b");
  ASSERT_TRUE(t.wait_for("balancing ON · γ = 0.01 · 0 bias updates")) << t.screen();
  t.keys("+");
  ASSERT_TRUE(t.wait_for("γ = 0.02")) << t.screen();
  t.keys("Right");
  t.keys("Right");
  ASSERT_TRUE(t.wait_for("2 bias updates")) << t.screen();
  // Pipeline panel: the time cursor moves, s switches the schedule.
  t.keys("5");
  ASSERT_TRUE(t.wait_for("no time cursor")) << t.screen();
  t.keys(".");
  t.type(">");
  ASSERT_TRUE(t.wait_for("time 10 of 66")) << t.screen();
  t.keys("s");
  ASSERT_TRUE(t.wait_for("schedule: dualpipev")) << t.screen();
  EXPECT_NE(t.screen().find("DualPipeV"), std::string::npos) << t.screen();
  // MTP panel: m runs a speculative step from any panel and shows its drafts.
  t.keys("m");
  ASSERT_TRUE(t.wait_for("speculative step: +")) << t.screen();
  EXPECT_NE(t.screen().find("7 MTP"), std::string::npos) << t.screen();
  EXPECT_NE(t.screen().find("prefill"), std::string::npos) << t.screen();
  // FP8 panel: , . pick the linear.
  t.keys("8");
  ASSERT_TRUE(t.wait_for("q_a_proj")) << t.screen();
  t.keys(".");
  ASSERT_TRUE(t.wait_for("linear 2 of")) << t.screen();
  EXPECT_NE(t.screen().find("q_b_proj"), std::string::npos) << t.screen();
  t.keys("q");
  ASSERT_TRUE(t.wait_for("EXIT=0")) << t.screen();
}

TEST(Explorer, CommandLineEditsAtTheCursor) {
  if (!have_tmux()) GTEST_SKIP() << "tmux not installed";
  Tmux t(kBin + " explore --prompt 'Hello MoE'");
  ASSERT_TRUE(t.wait_for("dsv3 explorer")) << t.screen();
  // ":ste 2", two characters left, insert "p": ":step 2".
  t.type(":ste 2");
  ASSERT_TRUE(t.wait_for(":ste 2")) << t.screen();
  t.keys("Left");
  t.keys("Left");
  t.type("p");
  ASSERT_TRUE(t.wait_for(":step 2")) << t.screen();
  t.keys("Enter");
  ASSERT_TRUE(t.wait_for("pos 8/8")) << t.screen();
  // Ctrl-A, a typo fixed with Delete, Ctrl-E, Ctrl-W.
  t.type(":xback 1");
  t.keys("C-a");
  t.keys("DC");
  ASSERT_TRUE(t.wait_for(":back 1")) << t.screen();
  t.keys("C-e");
  t.keys("C-w");
  ASSERT_TRUE(t.wait_for(":back 1", false)) << t.screen();  // (capture-pane trims the space)
  t.type("2");
  t.keys("Enter");
  ASSERT_TRUE(t.wait_for("pos 6/8")) << t.screen();
  t.keys("q");
  ASSERT_TRUE(t.wait_for("EXIT=0")) << t.screen();
}

// Keys pressed while `step N` or `generate N` computes are typed ahead, not lost: each burst below
// reaches the explorer in one write, so the second command is already waiting when the first
// one's progress check reads the keyboard. Esc stops a computation and is used up.
TEST(Explorer, KeysTypedDuringAComputationWaitTheirTurnAndEscStops) {
  if (!have_tmux()) GTEST_SKIP() << "tmux not installed";
  Tmux t(kBin + " explore --prompt 'Hello MoE'");
  ASSERT_TRUE(t.wait_for("pos 6/6")) << t.screen();
  // Before the fix, the second ':' stopped `step 2` after one position and was eaten; "back 1"
  // then ran as panel keys (b: balancing on, a: naive attention, k: layer up, space: a step).
  t.keys(quote(":step 2") + " Enter " + quote(":back 1") + " Enter");
  ASSERT_TRUE(t.wait_for("pos 7/8")) << t.screen();
  std::string s = t.screen();
  EXPECT_NE(s.find("back 1"), std::string::npos) << s;  // the popup of the second command
  EXPECT_EQ(s.find("balancing on"), std::string::npos) << s;
  EXPECT_EQ(s.find("naive"), std::string::npos) << s;
  t.keys("Escape");  // closes the popup
  ASSERT_TRUE(t.wait_for("back 1", false)) << t.screen();
  // Esc in the same burst as `generate 40` stops it after its first token.
  t.keys(quote(":generate 40") + " Enter Escape");
  ASSERT_TRUE(t.wait_for("generated 1:")) << t.screen();
  EXPECT_NE(header(t).find("pos 9/9"), std::string::npos) << t.screen();
  t.keys("q");  // closes the popup (the Esc was used up stopping, so the popup is still open)
  ASSERT_TRUE(t.wait_for("generated 1:", false)) << t.screen();
  t.keys("q");
  ASSERT_TRUE(t.wait_for("EXIT=0")) << t.screen();
}

TEST(Explorer, CtrlCRestoresTheTerminal) {
  if (!have_tmux()) GTEST_SKIP() << "tmux not installed";
  Tmux t(kBin + " explore");
  ASSERT_TRUE(t.wait_for("dsv3 explorer")) << t.screen();
  t.keys("C-c");
  ASSERT_TRUE(t.wait_for("EXIT=0")) << t.screen();
  EXPECT_EQ(t.screen().find("dsv3 explorer"), std::string::npos);
}

TEST(Explorer, NoColorMeansNoColourEscapes) {
  if (!have_tmux()) GTEST_SKIP() << "tmux not installed";
  Tmux colour(kBin + " explore");
  ASSERT_TRUE(colour.wait_for("dsv3 explorer"));
  EXPECT_NE(colour.screen(true).find("38;5;"), std::string::npos);
  Tmux mono("NO_COLOR=1 " + kBin + " explore");
  ASSERT_TRUE(mono.wait_for("dsv3 explorer"));
  std::string s = mono.screen(true);
  EXPECT_EQ(s.find("38;5;"), std::string::npos);
  EXPECT_FALSE(std::regex_search(s, std::regex("\\[([0-9;]*;)?[34][0-7]m")))
      << "an 8-colour escape:\n"
      << s;
}

TEST(Explorer, DefaultWithoutTerminalDoesNotHang) {
  Result bare = sh("timeout 20 " + kBin + " </dev/null 2>&1");
  EXPECT_NE(bare.status, 124) << "dsv3 hung without a terminal";
  Result r = sh("timeout 20 " + kBin + " explore </dev/null 2>&1");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("not a terminal"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Layer 1 gate"), std::string::npos) << r.out;
}

TEST(Repl, ThroughAPipe) {
  Result ok = sh("printf 'prompt abc\\nstep 2\\nroute 1 --json\\n' | " + kBin + " repl 2>&1");
  EXPECT_EQ(ok.status, 0) << ok.out;
  EXPECT_NE(ok.out.find("\"layer\": 1"), std::string::npos) << ok.out;
  EXPECT_EQ(ok.out.find("dsv3 ["), std::string::npos) << "no prompt when stdin is not a terminal";
  Result bad = sh("printf 'step\\nrute 1\\nstep\\n' | " + kBin + " repl 2>&1");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find("dsv3: line 2: unknown command 'rute'; did you mean 'route'?"),
            std::string::npos)
      << bad.out;
  Result going = sh("printf 'rute\\ntokens\\n' | " + kBin + " repl --keep-going 2>&1");
  EXPECT_EQ(going.status, 1);
  EXPECT_NE(going.out.find("text: "), std::string::npos) << going.out;
}

TEST(Repl, ExecRunsCommandsFromTheCommandLine) {
  Result r = sh(kBin + " exec 'step 2; kv --context 131072' 2>&1");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("8.58 GiB"), std::string::npos) << r.out;
  Result bad = sh(kBin + " exec 'route 7' 2>&1");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find("LAYER 7 is out of range"), std::string::npos) << bad.out;
}

TEST(Repl, TabCompletionAndHistoryInATerminal) {
  if (!have_tmux()) GTEST_SKIP() << "tmux not installed";
  Tmux t(kBin + " repl");
  ASSERT_TRUE(t.wait_for("dsv3 [")) << t.screen();
  t.type("rou");
  t.keys("Tab");
  ASSERT_TRUE(t.wait_for("]> route")) << t.screen();
  t.type("1");
  t.keys("Enter");
  ASSERT_TRUE(t.wait_for("Layer 1 gate")) << t.screen();
  t.type("set at");
  t.keys("Tab");
  ASSERT_TRUE(t.wait_for("set attn")) << t.screen();
  t.keys("C-u");
  t.type("quit");
  t.keys("Enter");
  ASSERT_TRUE(t.wait_for("EXIT=0")) << t.screen();
  std::ifstream h(t.state() / "dsv3" / "history");
  std::string all((std::istreambuf_iterator<char>(h)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("route 1"), std::string::npos) << all;
}

}  // namespace

// Issue 16, "Prompt, status line, conventions", as a user meets them at the terminal.
TEST(Explorer, HintsWhileTypingSearchNextBalancingHeaderAndSuspend) {
  if (!have_tmux()) GTEST_SKIP() << "tmux not installed";
  // Byte tokens: <BOS> a b c a b c a b c, so 'a' sits at positions 1, 4 and 7.
  Tmux t(kBin + " explore --model tiny-random --prompt abcabcabc");
  ASSERT_TRUE(t.wait_for("dsv3 explorer")) << t.screen();
  // The first screen points to the lessons.
  EXPECT_NE(t.screen().find(":lesson 1"), std::string::npos) << t.screen();

  // The `:` prompt shows what Tab would complete while typing.
  t.type(":ro");
  ASSERT_TRUE(t.wait_for(":ro  route")) << t.screen();
  t.keys("Escape");

  // `/` finds, `n` finds the next match after the cursor.
  t.type("/a");
  t.keys("Enter");
  ASSERT_TRUE(t.wait_for("found \"a\" at position 1")) << t.screen();
  t.keys("n");
  ASSERT_TRUE(t.wait_for("found \"a\" at position 4")) << t.screen();
  EXPECT_NE(header(t).find("pos 4/9"), std::string::npos) << header(t);

  // Live balancing shows in the header while it is on.
  EXPECT_EQ(header(t).find("balancing"), std::string::npos) << header(t);
  t.keys("b");
  ASSERT_TRUE(t.wait_for("balancing γ=")) << t.screen();

  t.keys("q");
  ASSERT_TRUE(t.wait_for("EXIT=0")) << t.screen();
}

// Ctrl-Z under a shell with job control: the shell gets the terminal back, `fg` redraws.
TEST(Explorer, CtrlZSuspendsAndFgResumes) {
  if (!have_tmux()) GTEST_SKIP() << "tmux not installed";
  Tmux t("bash --norc --noprofile -i");
  t.type(kBin + " explore --model tiny-random");
  t.keys("Enter");
  ASSERT_TRUE(t.wait_for("dsv3 explorer")) << t.screen();
  t.keys("C-z");
  ASSERT_TRUE(t.wait_for("Stopped")) << t.screen();
  EXPECT_EQ(t.screen().find("dsv3 explorer"), std::string::npos) << t.screen();
  t.type("fg");
  t.keys("Enter");
  ASSERT_TRUE(t.wait_for("resumed")) << t.screen();
  EXPECT_NE(t.screen().find("dsv3 explorer"), std::string::npos);
  t.keys("q");
  ASSERT_TRUE(t.wait_for("dsv3 explorer", false)) << t.screen();
}

TEST(Explorer, DumbTerminalGetsTheTextSummary) {
  if (!have_tmux()) GTEST_SKIP() << "tmux not installed";
  Tmux t("env TERM=dumb " + kBin + " explore --model tiny-random");
  ASSERT_TRUE(t.wait_for("EXIT=0")) << t.screen();
  const std::string s = t.screen();
  EXPECT_NE(s.find("TERM=dumb cannot move the cursor"), std::string::npos) << s;
  EXPECT_NE(s.find("Layer 1 gate"), std::string::npos) << s;  // the summary's routing panel
}
