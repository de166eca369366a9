// Lessons: Markdown files in lessons/ that walk through one idea of DeepSeek-V3 step by step.
// Each `## ` section is a step: prose, the paper and code it cites, ```dsv3 blocks of explorer
// commands (the REPL's command language) that run on a live session when the step is shown, and
// ```check blocks of expressions over the commands' JSON results, so a lesson whose numbers
// drift from the code fails its test. docs/writing-lessons.md describes the format.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsv3::app::lesson {

// A malformed lesson: "lessons/03-routing.md:41: <problem>".
struct LessonError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- expressions (checks and {{interpolations}}) -------------------------------------------

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

// Variables bound by `let NAME = COMMAND`: the command's JSON output (or its text as a string).
using Env = nlohmann::json;  // an object

// Parses "kv.forms[0].bytes_bf16 < 2 * kv.forms[3].bytes_bf16"; throws std::invalid_argument
// with the column of the problem.
ExprPtr parse_expr(std::string_view text);
// Evaluates against the bound variables; throws std::runtime_error (unknown name, wrong type).
nlohmann::json eval(const Expr& e, const Env& env);
// Truthiness of a check's result (true/false, or a number: non-zero); throws for other values.
bool is_true(const nlohmann::json& v);
// For a failing comparison: "left 70272, right 4194304" (empty for other expressions).
std::string explain(const Expr& e, const Env& env);
// Formats a value for prose: fmt "" (integers grouped 1,234, others 4 significant digits),
// "int", "bytes" (KiB/MiB/GiB), ".2f", ".3g", ".1%", "x" (ratio 12.3×), "B"/"M"/"K" (×1e9...).
std::string format_value(const nlohmann::json& v, std::string_view fmt);

// "expr:fmt" -> {"expr", "fmt"} at the last ':' outside quotes ({"expr", ""} without one).
std::pair<std::string, std::string> split_interpolation(const std::string& inner);

// ---- the lesson file ----------------------------------------------------------------------

struct Statement {
  int line = 0;
  std::string bind;     // `let NAME = ...`: bound, not shown; empty: shown in the panel pane
  std::string command;  // one explorer statement
};

struct Check {
  int line = 0;
  std::string text;   // the expression as written
  std::string label;  // after `#`: what it means ("MLA caches less than MHA")
  ExprPtr expr;
};

struct CodeRef {
  int line = 0;
  std::string path;      // relative to the source root: reference/model/kv_cache.cpp
  std::string function;  // KVCache::elements_per_token_per_layer
};

struct Step {
  int line = 0;  // of the `## ` heading
  std::string title;
  std::vector<std::string> prose;  // Markdown lines; ```text blocks kept with their fences
  std::string think;               // the "Think:" question, shown after the outputs
  std::string paper;               // "Paper: ..." citation
  std::string code;                // "Code: ..." citation as written
  std::vector<CodeRef> code_refs;
  std::vector<Statement> commands;
  std::vector<Check> checks;
};

struct Lesson {
  std::string path;  // as opened
  int number = 0;    // from the file name's leading digits (0 when none)
  std::string title;
  std::string summary;  // the paragraph under the title
  std::vector<Step> steps;
};

// Parses a lesson; every problem is reported as LessonError "PATH:LINE: problem".
// known_command(name) says whether a command exists (unknown ones are errors with suggestions).
Lesson parse_lesson(std::string_view text, const std::string& path);
Lesson load_lesson(const std::string& path);

// Where lessons live: $DSV3_LESSONS, else lessons/ in model::data_dir() ($DSV3_DATA_DIR, the
// install's share/dsv3, or the source tree for a build-tree binary). Throws LessonError when
// none exists.
std::string lessons_dir();
// The lesson files of a folder, sorted by name.
std::vector<std::string> lesson_files(const std::string& dir);
// "3" or "03" (by number), "03-deepseekmoe-routing", "fp8" or "dual" (a unique prefix or part
// of the file name, case ignored), or a path to a .md file.
std::string resolve_lesson(const std::string& which, const std::string& dir);

}  // namespace dsv3::app::lesson
