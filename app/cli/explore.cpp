// `dsv3 explore | repl | exec`: the explorer's front ends on the command line, and `dsv3` alone.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <sstream>

#include "app/cli/cli.h"
#include "app/commands/registry.h"
#include "app/explorer/repl.h"
#include "app/explorer/session.h"
#include "app/explorer/tui.h"
#include "reference/model/kv_cache.h"
#include "visualizers/explorer_screen.h"

namespace dsv3::app {

namespace {

struct FrontOptions {
  std::string model = "tiny";
  std::string prompt = kDefaultPrompt;
  std::string attn = "absorbed";
  std::string weights = "f32";  // --weights f32 | native
  bool keep_going = false;
};

void add_session_options(CLI::App* sub, FrontOptions& o) {
  sub->add_option("--model,-m", o.model,
                  "built-in name (tiny, small, ...), config.json or checkpoint folder")
      ->capture_default_str();
  sub->add_option("--prompt,-p", o.prompt, "prompt text (byte tokens after <BOS>)");
  sub->add_option("--attn", o.attn, "attention form of the cache: absorbed | naive")
      ->check(CLI::IsMember({"absorbed", "naive"}))
      ->capture_default_str();
  sub->add_option("--weights", o.weights,
                  "f32: every weight in float32; native: a checkpoint's matrices as stored "
                  "(FP8/BF16, mapped), the same numbers in a fraction of the memory")
      ->check(CLI::IsMember({"f32", "native"}))
      ->capture_default_str();
}

Session make_session(const FrontOptions& o) {
  SessionOptions so;
  so.model = o.model;
  so.prompt = o.prompt;
  so.attn = model::parse_attn_impl(o.attn);
  so.weights = model::parse_weight_mode(o.weights);
  try {
    return Session(so);
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
}

// What `dsv3` prints instead of the explorer when there is no terminal to draw on; `why` goes
// to stderr.
int text_summary(Session& s, const std::string& why) {
  viz::ExplorerView v = s.view();
  std::cout << viz::render_plain(viz::header_bar(v, 100));
  std::cout << "tokens: " << s.text() << "\n\n";
  std::cout << viz::render_plain(viz::routing_panel(v, 100, 0));
  std::cerr << "dsv3: " << why
            << ", so the explorer printed a text summary instead; use `dsv3 repl` (reads "
               "commands from stdin) or `dsv3 exec \"CMD; CMD\"`\n";
  return 0;
}

int explore(const FrontOptions& o) {
  Session s = make_session(o);
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
    return text_summary(s, "stdin/stdout is not a terminal");
  // A terminal without cursor addressing (TERM unset or dumb, e.g. an editor's shell buffer)
  // would show a blank screen.
  const char* term = std::getenv("TERM");
  if (!term || !*term) return text_summary(s, "TERM is not set");
  if (std::string(term) == "dumb") return text_summary(s, "TERM=dumb cannot move the cursor");
  return run_tui(s);
}

// A failing script exits 1 (the error line is already printed), not main's usage status 2.
[[noreturn]] void exit_with(int rc) {
  std::cout.flush();
  std::cerr.flush();
  std::exit(rc);
}

}  // namespace

void add_explore_commands(CLI::App& app) {
  static FrontOptions explore_opt, repl_opt, exec_opt;
  static std::vector<std::string> exec_cmds;

  auto* ex = app.add_subcommand(
      "explore", "the interactive explorer (ncurses): step through tokens, routing, KV cache");
  add_session_options(ex, explore_opt);
  ex->callback([] {
    int rc = explore(explore_opt);
    if (rc != 0) exit_with(rc);
  });

  auto* repl = app.add_subcommand(
      "repl", "the explorer's command language at a readline prompt (or from a pipe)");
  add_session_options(repl, repl_opt);
  repl->add_flag("--keep-going,-k", repl_opt.keep_going,
                 "piped input: continue after a failing command");
  repl->callback([] {
    Session s = make_session(repl_opt);
    int rc = run_repl(s, repl_opt.keep_going);
    if (rc != 0) exit_with(rc);
  });

  auto* exec = app.add_subcommand(
      "exec", "run explorer commands and print their output: dsv3 exec \"step 3; route 1\"");
  add_session_options(exec, exec_opt);
  exec->add_option("commands", exec_cmds, "commands; `;` separates several in one argument")
      ->required();
  exec->add_flag("--keep-going,-k", exec_opt.keep_going, "continue after a failing command");
  exec->callback([] {
    Session s = make_session(exec_opt);
    std::string script;
    for (const auto& c : exec_cmds) script += c + "\n";
    std::istringstream in(script);
    ScriptOptions so{exec_opt.keep_going, stdout_colour(s), output_width()};
    for (const auto& c : exec_cmds)
      for (const std::string& stmt : split_statements(c)) so.json_only |= wants_json(stmt);
    int rc = run_script(s, in, std::cout, std::cerr, so);
    if (rc != 0) exit_with(rc);
  });
}

int run_explorer_default() {
  FrontOptions o;
  return explore(o);
}

}  // namespace dsv3::app
