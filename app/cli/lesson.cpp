// `dsv3 lesson [N] [--plain]`: list the lessons, or play one in the terminal or as plain text.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "app/cli/cli.h"
#include "app/lesson/player.h"

namespace dsv3::app {

namespace {

struct LessonOptions {
  std::string which;
  bool plain = false;
  int width = 80;
  int step = 1;
  std::string dir;
};

int lesson_main(const LessonOptions& o) {
  try {
    std::string dir = o.dir.empty() ? lesson::lessons_dir() : o.dir;
    if (o.which.empty()) {
      std::cout << lesson::lesson_list(dir);
      return 0;
    }
    lesson::Lesson l = lesson::load_lesson(lesson::resolve_lesson(o.which, dir));
    if (o.step < 1 || o.step > static_cast<int>(l.steps.size()))
      throw UsageError(fmt::format("--step {} is outside 1..{}", o.step, l.steps.size()));
    bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (!o.plain && tty) return lesson::play_tui(l, o.step - 1);
    if (!o.plain)
      std::cerr << "dsv3: not a terminal, so the lesson is printed as plain text (--plain)\n";
    int failures = lesson::play_plain(l, std::cout, o.width);
    if (failures) {
      std::cout.flush();
      std::cerr << fmt::format(
          "dsv3: lesson {}: {} problem(s) (failed checks or commands) — see the ✗ lines\n",
          l.number, failures);
      return 1;
    }
    return 0;
  } catch (const lesson::LessonError& e) {
    throw UsageError(e.what());
  }
}

}  // namespace

void add_lesson_commands(CLI::App& app) {
  static LessonOptions o;
  auto* sub = app.add_subcommand("lesson",
                                 "step-through lessons on the live model: `dsv3 lesson` lists "
                                 "them, `dsv3 lesson N` plays one");
  sub->add_option("lesson", o.which, "lesson number, name prefix, or a path to a lesson .md file");
  sub->add_flag("--plain", o.plain,
                "print the whole lesson with every command's output as plain text");
  sub->add_option("--width", o.width, "plain mode: columns for text and pictures")
      ->check(CLI::Range(60, 400))
      ->capture_default_str();
  sub->add_option("--step", o.step, "TUI: start at this step (earlier steps run first)")
      ->check(CLI::PositiveNumber);
  sub->add_option(
      "--dir", o.dir,
      "folder of lesson files (default: $DSV3_LESSONS or the lessons/ folder found near dsv3)");
  sub->callback([] {
    int rc = lesson_main(o);
    if (rc != 0) {
      std::cout.flush();
      std::exit(rc);
    }
  });
}

}  // namespace dsv3::app
