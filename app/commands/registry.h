// The one command language of the explorer. Each command declares its name, typed arguments
// (with defaults and completions), flags, help text and a handler; the REPL, the TUI's `:`
// prompt, lessons and `dsv3 exec` all run commands through this registry, so help, argument
// checking and tab completion exist once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "visualizers/canvas.h"
#include "visualizers/explorer_screen.h"

namespace dsv3::app {

class Session;

// A wrong command, argument or state: one line saying what is wrong and how to fix it.
struct CommandError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class ArgKind {
  kInt,  // any integer (with optional min/max)
  kFloat,
  kWord,      // one word
  kText,      // the rest of the line, verbatim (quotes optional)
  kChoice,    // one of `choices`
  kPath,      // a file name (completed from the file system)
  kLayer,     // 0 .. num_hidden_layers-1
  kExpert,    // 0 .. n_routed_experts-1
  kPosition,  // a computed position 0 .. computed-1
  kHead,      // 0 .. num_attention_heads-1
};

struct ArgSpec {
  std::string name;  // upper case in help: LAYER
  ArgKind kind = ArgKind::kWord;
  std::string help;
  std::string def;  // default ("" = none); optional args without default are simply absent
  bool required = false;
  std::vector<std::string> choices;
  int64_t min = INT64_MIN, max = INT64_MAX;  // kInt
  // Extra candidates for Tab (e.g. tensor names); choices and typed ranges complete by themselves.
  std::function<std::vector<std::string>(const Session&)> complete;
};

struct FlagSpec {
  std::string name;  // without dashes: "json", "temperature"
  ArgKind kind = ArgKind::kWord;
  bool takes_value = false;
  std::string help;
  std::vector<std::string> choices;
};

// Parsed and checked arguments of one invocation.
class Args {
 public:
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  const std::string& str(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  double real(const std::string& name) const;

  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
};

// What a command gives back: text, a picture, or both; and what a front end should do next.
struct Output {
  std::string text;
  std::optional<viz::Canvas> canvas;
  std::optional<viz::Panel> panel;  // the TUI shows this panel instead of a popup of `canvas`
  bool quit = false;
};

// Front-end hints: canvases are drawn this wide.
struct Context {
  int width = 100;
};

struct Command {
  std::string name;
  std::vector<std::string> aliases;
  std::string summary;  // one line for `help`
  std::string help;     // details for `help NAME`
  std::vector<ArgSpec> args;
  std::vector<FlagSpec> flags;
  std::function<Output(Session&, const Args&, const Context&)> run;
  std::string usage() const;  // "route [LAYER] [TOKEN] [--json]"
};

struct Completion {
  size_t start = 0;                     // where the completed word begins in the line
  std::vector<std::string> candidates;  // sorted, unique
  bool paths = false;                   // the word is a file name: complete from the file system
};

class Registry {
 public:
  void add(Command c);
  const Command* find(std::string_view name) const;  // by name or alias
  const std::vector<Command>& commands() const { return commands_; }

  // Runs one statement ("route 1 --json"); throws CommandError on any problem.
  Output run(Session& s, std::string_view line, const Context& ctx = {}) const;
  // Checks arguments against the declaration (exposed for tests).
  Args parse(const Command& c, const Session& s, std::string_view rest) const;

  Completion complete(const Session& s, std::string_view line, size_t cursor) const;
  std::string help(std::string_view name = {}) const;
  std::vector<std::string> suggestions(std::string_view unknown) const;  // "did you mean"

 private:
  std::vector<Command> commands_;
};

// The built-in commands (help, load, prompt, step, route, kv, ...), built once.
const Registry& registry();

// Splits "step 3; route 1  # comment" into statements at semicolons outside quotes; a `#` at
// the start or after a space (outside quotes) starts a comment that runs to the end of the text.
std::vector<std::string> split_statements(std::string_view text);
// Splits a statement into words, honouring "double" and 'single' quotes; records where each
// word starts in the line.
struct Word {
  std::string text;
  size_t begin = 0, end = 0;
};
std::vector<Word> split_words(std::string_view line);

}  // namespace dsv3::app
