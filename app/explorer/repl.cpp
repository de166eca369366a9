#include "app/explorer/repl.h"

#include <fmt/format.h>
#include <readline/history.h>
#include <readline/readline.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "app/explorer/session.h"
#include "visualizers/canvas.h"

namespace dsv3::app {

namespace fs = std::filesystem;

void print_output(const Output& o, std::ostream& out, bool colour) {
  if (o.canvas) out << (colour ? viz::render_ansi(*o.canvas) : viz::render_plain(*o.canvas));
  if (!o.text.empty()) {
    out << o.text;
    if (o.text.back() != '\n') out << '\n';
  }
  out.flush();
}

bool wants_json(std::string_view stmt) {
  for (const Word& w : split_words(stmt))  // unquoted: `prompt "--json"` is a prompt
    if (w.text == "--json" && stmt.substr(w.begin, w.end - w.begin) == "--json") return true;
  return false;
}

int run_script(Session& s, std::istream& in, std::ostream& out, std::ostream& err,
               const ScriptOptions& opt) {
  Context ctx{opt.width};
  std::string line;
  int lineno = 0, status = 0;
  while (std::getline(in, line)) {
    ++lineno;
    size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    for (const std::string& stmt : split_statements(line)) {
      try {
        Output o = registry().run(s, stmt, ctx);
        const bool to_err = opt.json_only && !wants_json(stmt);
        print_output(o, to_err ? err : out, opt.colour && !to_err);
        if (o.quit) return status;
      } catch (const std::exception& e) {
        err << fmt::format("dsv3: line {}: {}\n", lineno, e.what());
        err.flush();
        status = 1;
        if (!opt.keep_going) return status;
      }
    }
  }
  return status;
}

std::string history_path() {
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state && *state && state[0] == '/') return (fs::path(state) / "dsv3" / "history").string();
  const char* home = std::getenv("HOME");
  if (home && *home) return (fs::path(home) / ".local" / "state" / "dsv3" / "history").string();
  return "";
}

int output_width() {
  winsize ws{};
  if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    int n = std::atoi(c);
    if (n >= 20) return n;
  }
  return 100;
}

bool stdout_colour(const Session& s) {
  if (s.settings().colour == "mono") return false;
  return !viz::colour_disabled(STDOUT_FILENO);
}

namespace {

// readline has one global state; the completer reaches the session through this pointer.
Session* g_session = nullptr;
std::vector<std::string> g_matches;

char* next_match(const char*, int state) {
  static size_t i;
  if (state == 0) i = 0;
  if (i < g_matches.size()) return strdup(g_matches[i++].c_str());
  return nullptr;
}

char** complete(const char* text, int, int end) {
  rl_attempted_completion_over = 1;  // never fall back to file names unless asked
  if (!g_session) return nullptr;
  Completion c = registry().complete(*g_session, rl_line_buffer, static_cast<size_t>(end));
  if (c.paths) {
    rl_attempted_completion_over = 0;
    rl_filename_completion_desired = 1;
    return rl_completion_matches(text, rl_filename_completion_function);
  }
  g_matches = c.candidates;
  return rl_completion_matches(text, next_match);
}

void on_sigint(int) {
  // Ctrl-C abandons the line being typed, as in a shell; Ctrl-D or `quit` leaves.
  ssize_t r = write(STDOUT_FILENO, "\n", 1);
  (void)r;
  rl_on_new_line();
  rl_replace_line("", 0);
  rl_redisplay();
}

}  // namespace

int run_repl(Session& s, bool keep_going) {
  if (!isatty(STDIN_FILENO)) {
    ScriptOptions opt{keep_going, stdout_colour(s), output_width()};
    return run_script(s, std::cin, std::cout, std::cerr, opt);
  }
  g_session = &s;
  rl_readline_name = "dsv3";
  rl_attempted_completion_function = complete;
  rl_basic_word_break_characters = const_cast<char*>(" \t;");
  rl_catch_signals = 0;
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  sigaction(SIGINT, &sa, &old);

  std::string hist = history_path();
  using_history();
  stifle_history(2000);
  if (!hist.empty()) {
    std::error_code ec;
    fs::create_directories(fs::path(hist).parent_path(), ec);
    read_history(hist.c_str());
  }
  std::cout << fmt::format(
      "dsv3 repl · model {} · {} tokens · `help` lists commands, Tab completes, Ctrl-D quits\n",
      s.weights_note().empty() ? s.model_name()
                               : fmt::format("{} ({})", s.model_name(), s.weights_note()),
      s.tokens().size());
  int status = 0;
  while (true) {
    std::string prompt = fmt::format("dsv3 [{}]> ", s.cursor());
    char* raw = readline(prompt.c_str());
    if (!raw) {
      std::cout << "\n";
      break;
    }
    std::string line = raw;
    free(raw);
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    add_history(line.c_str());
    if (!hist.empty()) {
      // Append as we go, so history survives a crash or a killed terminal.
      if (append_history(1, hist.c_str()) != 0) write_history(hist.c_str());
    }
    bool quit = false;
    for (const std::string& stmt : split_statements(line)) {
      try {
        Output o = registry().run(s, stmt, Context{output_width()});
        print_output(o, std::cout, stdout_colour(s));
        if (o.quit) quit = true;
      } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        (void)keep_going;  // at a terminal an error never ends the session
        break;
      }
    }
    if (quit) break;
  }
  if (!hist.empty()) history_truncate_file(hist.c_str(), 2000);
  sigaction(SIGINT, &old, nullptr);
  g_session = nullptr;
  return status;
}

}  // namespace dsv3::app
