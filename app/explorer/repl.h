// The REPL: GNU readline on a terminal (history, Ctrl-R, Tab completion from the command
// registry), or plain line-by-line scripts when stdin is not a terminal (and `dsv3 exec`).
#pragma once

#include <iosfwd>
#include <string>
#include <string_view>

#include "app/commands/registry.h"

namespace dsv3::app {

class Session;

struct ScriptOptions {
  bool keep_going = false;  // continue after a failing command (exit status stays 1)
  bool colour = false;      // ANSI colours in canvases
  int width = 100;          // canvas width
  // `dsv3 exec` with a `--json` command: stdout carries only the JSON documents, the other
  // commands' output ("stepped 3; ...") goes to the error stream, so `| jq` works.
  bool json_only = false;
};
// Whether a statement asks for JSON (a `--json` word outside quotes).
bool wants_json(std::string_view stmt);

// Runs commands line by line (`;` separates commands on a line, `#` starts a comment).
// Returns 0, or 1 when a command failed.
int run_script(Session& s, std::istream& in, std::ostream& out, std::ostream& err,
               const ScriptOptions& opt);
// Prints one command's output: its canvas (plain or ANSI), then its text.
void print_output(const Output& o, std::ostream& out, bool colour);

// The interactive REPL on a terminal; falls back to run_script when stdin is not one.
int run_repl(Session& s, bool keep_going);

// $XDG_STATE_HOME/dsv3/history, or ~/.local/state/dsv3/history; "" when neither is known.
std::string history_path();
// Columns of the terminal on stdout, else $COLUMNS, else 100.
int output_width();
// Whether canvases on stdout get colours: a terminal, NO_COLOR unset, colour setting not mono.
bool stdout_colour(const Session& s);

}  // namespace dsv3::app
