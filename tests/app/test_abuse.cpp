// The explorer under abuse (docs/reliability.md): the TUI in tmux takes 10^4 random keys, pastes
// and resizes down to 1x1 and back, then still answers and quits cleanly; the REPL takes 10^4
// random lines; every command survives a closed stdin, a closed stdout and a reader that goes
// away (SIGPIPE). Random inputs come from a fixed seed, so a failure replays exactly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/sanitizer.h"
#include "tests/support/shell.h"

namespace {

namespace fs = std::filesystem;
using dsv3::test_support::shell;

const std::string kBin = DSV3_BINARY;

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A scratch folder per test, removed at the end.
struct Scratch {
  fs::path dir;
  Scratch() {
    dir = fs::temp_directory_path() /
          ("dsv3_abuse_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

// What a crash leaves in stderr: a sanitizer report, an uncaught exception, an assertion.
void expect_no_crash_report(const std::string& err, const std::string& what) {
  for (const char* bad : {"Sanitizer", "runtime error:", "terminate called", "Assertion",
                          "Segmentation fault", "core dumped"})
    EXPECT_EQ(err.find(bad), std::string::npos) << what << ":\n" << err.substr(0, 4000);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// ---- the TUI in tmux ------------------------------------------------------------------------

class Tmux {
 public:
  Tmux(const std::string& command, const fs::path& state, int cols, int rows) {
    static int counter = 0;
    name_ = "dsv3abuse_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    // The shell prints the exit status after dsv3 ends and keeps the pane open to read it.
    const std::string inner =
        "env LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=xterm-256color XDG_STATE_HOME=" + state.string() +
        " " + command + " 2>" + (state / "err").string() + "; echo EXIT=$?; sleep 60";
    tmux("-f /dev/null new-session -d -s main -x " + std::to_string(cols) + " -y " +
         std::to_string(rows) + " " + quote(inner));
  }
  ~Tmux() { tmux("kill-server 2>/dev/null"); }
  int tmux(const std::string& args) const {
    return shell("tmux -L " + name_ + " " + args + " >/dev/null 2>&1").status;
  }
  std::string screen() const {
    return shell("tmux -L " + name_ + " capture-pane -p -t main 2>/dev/null").out;
  }
  bool wait_for(const std::string& text, int seconds = 30) const {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (screen().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

 private:
  std::string name_;
};

// Keys of every kind the explorer reads, except the ones that end or suspend it (q, Ctrl-C,
// Ctrl-Z, Ctrl-\): the point is that it survives everything else. tmux key names; ';' is left
// out because a lone ';' separates tmux commands (semicolons still arrive in pastes).
const std::vector<std::string>& storm_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k = {"Left",   "Right", "Up",  "Down", "Home",  "End",    "PPage",
                                  "NPage",  "BTab",  "Tab", "F1",   "F5",    "Escape", "Enter",
                                  "BSpace", "DC",    "IC",  "C-a",  "C-e",   "C-k",    "C-u",
                                  "C-w",    "C-l",   "C-p", "C-n",  "Space", "M-x",    "C-r"};
    for (char c = 'a'; c <= 'z'; ++c)
      if (c != 'q') k.push_back(std::string(1, c));
    for (char c : std::string("0123456789:/?[]+-=<>.,'\"#{}()*&^%$@!~`|"))
      k.push_back(std::string(1, c));
    return k;
  }();
  return keys;
}

TEST(ExplorerAbuse, TenThousandRandomKeysPastesAndResizesThenItStillAnswersAndQuits) {
  if (shell("command -v tmux >/dev/null 2>&1").status != 0) GTEST_SKIP() << "tmux not installed";
  Scratch scratch;
  Tmux t(kBin + " explore --prompt 'Hi.'", scratch.dir, 100, 30);
  ASSERT_TRUE(t.wait_for("dsv3 explorer")) << t.screen();
  std::mt19937 rng(17);
  const auto& keys = storm_keys();
  const int kKeys = 10000, kBatch = 50;
  const std::vector<std::pair<int, int>> sizes = {{1, 1},   {2, 1},   {1, 2},    {10, 3},
                                                  {40, 10}, {80, 24}, {200, 60}, {100, 30}};
  for (int sent = 0; sent < kKeys; sent += kBatch) {
    std::string batch;
    for (int i = 0; i < kBatch; ++i) batch += " " + quote(keys[rng() % keys.size()]);
    EXPECT_EQ(t.tmux("send-keys -t main" + batch), 0);
    if (rng() % 8 == 0) {  // a paste: a long line of random printable and UTF-8 text, no 'q'
      std::string text;
      for (int i = 0, n = 1 + static_cast<int>(rng() % 300); i < n; ++i) {
        const char c = static_cast<char>(33 + rng() % 94);
        text += rng() % 10 == 0 ? std::string("é深🙂") : std::string(1, c == 'q' ? 'Q' : c);
      }
      t.tmux("set-buffer -- " + quote(text));
      t.tmux("paste-buffer -t main");
    }
    if (rng() % 6 == 0) {
      const auto [c, r] = sizes[rng() % sizes.size()];
      t.tmux("resize-window -t main -x " + std::to_string(c) + " -y " + std::to_string(r));
    }
  }
  // Back to a normal size, out of any prompt, popup or help: the explorer answers a key.
  t.tmux("resize-window -t main -x 100 -y 30");
  t.tmux("send-keys -t main Escape Escape Escape");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  t.tmux("send-keys -t main Escape ?");
  ASSERT_TRUE(t.wait_for("dsv3 explorer")) << t.screen();
  t.tmux("send-keys -t main Escape Escape q");
  ASSERT_TRUE(t.wait_for("EXIT=")) << t.screen();
  EXPECT_NE(t.screen().find("EXIT=0"), std::string::npos) << t.screen();
  expect_no_crash_report(read_file(scratch.dir / "err"), "explorer stderr");
}

// ---- the REPL from a pipe -------------------------------------------------------------------

// A random statement: a real command with random arguments, or random bytes. Commands that leave
// (quit), write files (export) or load other models (load, lesson) are left out.
std::string random_line(std::mt19937& rng) {
  static const std::vector<std::string> commands = {
      "help",     "prompt",   "ids",      "step",        "back",     "goto",     "generate",
      "tokens",   "set",      "route",    "experts",     "bias",     "kv",       "attn",
      "logits",   "panel",    "info",     "show",        "pipeline", "mla",      "yarn",
      "mtp-loss", "mtp-spec", "fp8-bits", "fp8-scaling", "pp-sim",   "pp-table", "params",
      "memory",   "balance",  "mtp",      "fp8",         "bogus",    "rout",     ""};
  static const std::vector<std::string> words = {"0",
                                                 "1",
                                                 "3",
                                                 "-1",
                                                 "-9999999999",
                                                 "99999999999999999999",
                                                 "1e308",
                                                 "nan",
                                                 "inf",
                                                 "0x10",
                                                 "1.5",
                                                 "--json",
                                                 "--context",
                                                 "--config",
                                                 "--depth",
                                                 "--agree",
                                                 "--time",
                                                 "--format",
                                                 "--temperature",
                                                 "v3",
                                                 "tiny",
                                                 "dualpipe",
                                                 "1f1b",
                                                 "zb1p",
                                                 "on",
                                                 "off",
                                                 "reset",
                                                 "attn",
                                                 "colour",
                                                 "mono",
                                                 "\"quoted ; text\"",
                                                 "'single'",
                                                 "\"unterminated",
                                                 "#",
                                                 ";",
                                                 "e4m3",
                                                 "model.layers.1.mlp.gate.weight",
                                                 "é深🙂",
                                                 "\t",
                                                 ""};
  std::string line;
  if (rng() % 5 == 0) {  // raw bytes (no newline: one line), control characters included
    for (int i = 0, n = static_cast<int>(rng() % 80); i < n; ++i) {
      char c = static_cast<char>(1 + rng() % 255);
      line += c == '\n' ? ' ' : c;
    }
    return line;
  }
  line = commands[rng() % commands.size()];
  for (int i = 0, n = static_cast<int>(rng() % 5); i < n; ++i)
    line += " " + words[rng() % words.size()];
  if (rng() % 10 == 0) line += "; " + random_line(rng);
  return line;
}

TEST(ReplAbuse, TenThousandRandomLinesThenItStillAnswers) {
  Scratch scratch;
  std::mt19937 rng(1717);
  {
    std::ofstream in(scratch.dir / "lines");
    // 10^4 lines; 2 000 under the sanitizers (every command still comes up, ~200 times each).
    const int64_t lines = dsv3::test_support::full_or_sanitized(10000, 2000);
    for (int64_t i = 0; i < lines; ++i) in << random_line(rng) << "\n";
    in << "kv --json\n";  // still answering at the end
  }
  const auto r = shell("cd " + quote(scratch.dir.string()) + " && " + quote(kBin) +
                       " repl --keep-going --prompt 'Hi.' < lines 2> err");
  const std::string err = read_file(scratch.dir / "err");
  EXPECT_NE(r.status, -1) << "killed by a signal\n" << err.substr(0, 4000);
  expect_no_crash_report(err, "repl stderr");
  // The last command's JSON is the last thing printed.
  EXPECT_NE(r.out.rfind("\"mla\""), std::string::npos) << r.out.substr(r.out.size() - 2000);
  // Every bad line was one line of error, never a stack of them.
  EXPECT_GT(err.size(), 0u);
}

// ---- every command with a closed stdin and a stdout that fails ------------------------------

// Quick invocations of every subcommand (bad arguments included: those must fail as cleanly).
const std::vector<std::string> kCommands = {
    "",
    "--help-all",
    "--version",
    "info v3",
    "info tiny --json",
    "fp8 decode 0x38 255 0 --json",
    "fp8 encode 1.5 -448 1e30 nan",
    "fp8 dot --a 3840 --b 3840",
    "pipeline ops dualpipe",
    "pipeline simulate",
    "pipeline compare",
    "pipeline overlap",
    "balance simulate --steps 20",
    "demo",
    "generate --prompt Hi -n 4",
    "forward --ids 0,5,7",
    "mtp-loss",
    "mtp-demo",
    "explore",
    "repl",
    "exec 'step 2; route 1; kv; help; tokens'",
    "lesson",
    "lesson 1 --plain",
    "tokenizer encode Hello",
    "tokenizer decode 1,2,300",
    "eval",
    "experts",
    "export",
    "grad",
    "train",
    "tokenize",
    "no-such-command",
};

TEST(CliAbuse, EveryCommandSurvivesClosedStdinClosedStdoutAndABrokenPipe) {
  Scratch scratch;
  const std::string cd = "cd " + quote(scratch.dir.string()) + " && ";
  for (const std::string& args : kCommands) {
    for (const char* how : {"closed stdin, reader gone", "closed stdout"}) {
      SCOPED_TRACE(args + " (" + how + ")");
      const bool pipe = how[7] == 's';
      // bash: ${PIPESTATUS[0]} is dsv3's status; 141 = killed by SIGPIPE, the normal end of a
      // writer whose reader left (as `yes | head` ends).
      const std::string run = "timeout 120 " + quote(kBin) + " " + args + " <&- 2>err";
      const std::string cmd =
          pipe ? run + " | head -c 1 >/dev/null; echo \"status ${PIPESTATUS[0]}\""
               : run + " >&-; echo \"status $?\"";
      const auto r = shell(cd + "bash -c " + quote(cmd));
      const size_t at = r.out.rfind("status ");
      ASSERT_NE(at, std::string::npos) << r.out;
      const int status = std::stoi(r.out.substr(at + 7));
      EXPECT_TRUE(status == 0 || status == 1 || status == 2 || status == 141)
          << "exit status " << status << "\n"
          << read_file(scratch.dir / "err").substr(0, 4000);
      expect_no_crash_report(read_file(scratch.dir / "err"), "stderr");
    }
  }
}

}  // namespace
