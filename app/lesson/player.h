// Playing a lesson: each step's commands run on a live Session through the command registry
// (the REPL's language), its checks are evaluated on what the commands returned, and the prose
// is filled in from the same results. The plain player prints it all; the TUI player
// (tui.cpp) shows it in two panes. Both draw through the Canvas pictures below.
#pragma once

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/commands/registry.h"
#include "app/lesson/lesson.h"
#include "visualizers/canvas.h"

namespace dsv3::app {
class Session;
}

namespace dsv3::app::lesson {

struct Shown {
  std::string command;
  Output out;
  std::string error;  // the command failed: its message
};

struct CheckResult {
  const Check* check = nullptr;
  bool pass = false;
  std::string detail;  // why it failed: the compared values or the evaluation error
};

struct StepResult {
  std::vector<Shown> shown;  // outputs of the statements without `let`, in order
  std::vector<CheckResult> checks;
  std::vector<std::string> prose;  // with {{...}} filled in
  std::string think;
  std::string error;  // first command or interpolation error of the step
  int failed() const;
  bool ok() const { return error.empty() && failed() == 0; }
};

class Player {
 public:
  // width: the columns command pictures are drawn at (the panel pane's width).
  Player(Lesson lesson, int width);
  ~Player();
  Player(const Player&) = delete;
  Player& operator=(const Player&) = delete;

  const Lesson& lesson() const { return lesson_; }
  int steps() const { return static_cast<int>(lesson_.steps.size()); }
  // Step i (0-based) as first computed: earlier steps run first, in order, on the same session.
  const StepResult& show(int i);
  // Runs step i again from a fresh session (steps 0..i-1 replayed first); later results are
  // dropped and recomputed when visited.
  const StepResult& rerun(int i);
  void set_width(int w) { width_ = w; }

 private:
  void reset();
  StepResult run(int i);

  Lesson lesson_;
  int width_;
  std::unique_ptr<Session> session_;
  Env env_;
  int ran_ = 0;  // steps run on the current session
  std::vector<std::optional<StepResult>> cache_;
};

// ---- pictures shared by the plain and the TUI player ---------------------------------------

// Prose (Markdown subset) wrapped to `width`, followed by the Paper/Code citations; with
// `think`, the step's question at the end. plain = keep `backticks` (no styles to show code).
viz::Canvas prose_canvas(const Step& step, const StepResult& r, int width, bool think, bool plain);
// The step's live outputs: each shown command's title line, picture and text, then the checks.
viz::Canvas outputs_canvas(const StepResult& r, int width);
// Checks as lines: "✓ label" / "✗ label — expr (left .., right ..)".
std::vector<std::string> check_lines(const StepResult& r);

// The whole TUI screen (pure, for snapshot tests): header, step title, prose and panel panes,
// status line. focus: 0 prose, 1 panels.
struct ScreenView {
  int step = 0;
  int prose_scroll = 0;
  int panel_scroll = 0;
  int focus = 1;
  std::string message;
  std::string busy;  // non-empty while a step is computed: "computing step 3 …" in the status line
};
// The key hints of the status line.
inline constexpr std::string_view kLessonKeys =
    "Space/→ next  ← back  n next lesson  r re-run  ↑↓ scroll  Tab pane  q leave";
inline constexpr std::string_view kLessonKeysShort =
    "→ next  ← back  n next lesson  r re-run  ↑↓ Tab  q leave";
viz::Canvas lesson_screen(const Lesson& l, const StepResult& r, const ScreenView& v, int w, int h);
// The width the panel pane has on a w-column screen (commands draw at this width).
int panel_width(int w);

// Prints every step with its outputs and checks; returns the number of failed checks and
// failed commands (0 = the lesson plays cleanly).
int play_plain(const Lesson& l, std::ostream& out, int width = 80);

// `dsv3 lesson N` in a terminal (or inside the explorer, which already has ncurses running).
// Returns 0 after q.
int play_tui(const Lesson& l, int start_step = 0);

// `dsv3 lesson`: "  1  title   6 steps" lines.
std::string lesson_list(const std::string& dir);

}  // namespace dsv3::app::lesson
