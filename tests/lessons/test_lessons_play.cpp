// Every lesson in lessons/ plays to the end in plain mode with all its checks passing, fits 80
// columns, and cites source files and functions that exist; the `dsv3 lesson` command line.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "app/lesson/lesson.h"
#include "app/lesson/player.h"
#include "tests/support/shell.h"
#include "visualizers/canvas.h"

namespace dsv3::app::lesson {
namespace {

namespace fs = std::filesystem;

const std::string kRoot = std::string(DSV3_TEST_DATA) + "/../..";
const std::string kLessons = kRoot + "/lessons";

using CmdResult = dsv3::test_support::ShellResult;  // stdout and stderr together

CmdResult run(const std::string& args) {
  return dsv3::test_support::shell("DSV3_LESSONS='" + kLessons + "' '" + std::string(DSV3_BINARY) +
                                   "' " + args + " 2>&1");
}

std::string temp_file(const std::string& name, const std::string& text) {
  fs::path p = fs::temp_directory_path() / (std::to_string(getpid()) + "-" + name);
  std::ofstream(p) << text;
  return p.string();
}

TEST(Lessons, AtLeastEightAndAllParse) {
  auto files = lesson_files(kLessons);
  ASSERT_GE(files.size(), 8u);
  for (const auto& f : files) {
    Lesson l = load_lesson(f);
    EXPECT_GT(l.number, 0) << f;
    EXPECT_GE(l.steps.size(), 3u) << f;
    for (const Step& s : l.steps) {
      EXPECT_FALSE(s.paper.empty()) << f << ":" << s.line;
      EXPECT_FALSE(s.code_refs.empty()) << f << ":" << s.line;
    }
  }
}

// The code a step cites must exist: the file, and the function's name in it.
TEST(Lessons, CitedCodeExists) {
  for (const auto& f : lesson_files(kLessons)) {
    for (const Step& s : load_lesson(f).steps) {
      for (const CodeRef& r : s.code_refs) {
        fs::path path = fs::path(kRoot) / r.path;
        ASSERT_TRUE(fs::is_regular_file(path)) << f << ":" << r.line << ": no file " << r.path;
        std::stringstream ss;
        ss << std::ifstream(path).rdbuf();
        std::string name = r.function.substr(
            r.function.rfind(':') == std::string::npos ? 0 : r.function.rfind(':') + 1);
        EXPECT_NE(ss.str().find(name), std::string::npos)
            << f << ":" << r.line << ": " << r.path << " has no " << name;
      }
    }
  }
}

class PlayLesson : public ::testing::TestWithParam<std::string> {};

TEST_P(PlayLesson, PlaysToTheEndWithAllChecksPassing) {
  Lesson l = load_lesson(GetParam());
  std::ostringstream out;
  int failures = play_plain(l, out, 80);
  EXPECT_EQ(failures, 0) << out.str();
  std::string text = out.str();
  EXPECT_NE(text.find("all checks passed"), std::string::npos);
  EXPECT_EQ(text.find("{{?"), std::string::npos) << "an interpolation failed";
  // Fits an 80-column terminal.
  std::istringstream lines(text);
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n)
    EXPECT_LE(viz::display_width(line), 80) << GetParam() << " output line " << n << ": " << line;
  // Every step's checks ran.
  size_t checks = 0;
  for (const Step& s : l.steps) checks += s.checks.size();
  size_t ticks = 0;
  for (size_t p = text.find("✓ "); p != std::string::npos; p = text.find("✓ ", p + 1)) ++ticks;
  EXPECT_GE(ticks, checks);
}

std::string lesson_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = fs::path(info.param).stem().string();
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return "L" + s;
}

INSTANTIATE_TEST_SUITE_P(All, PlayLesson, ::testing::ValuesIn(lesson_files(kLessons)), lesson_name);

TEST(Lessons, AFailingCheckIsReported) {
  std::string text = R"(# Drift

## One step

Paper: nowhere
Code: app/lesson/lesson.cpp parse_lesson

```dsv3
let i = info --json
```

```check
i.num_hidden_layers > 1000   # a check that no longer holds
```
)";
  Lesson l = parse_lesson(text, "drift.md");
  std::ostringstream out;
  EXPECT_EQ(play_plain(l, out, 80), 1);
  EXPECT_NE(out.str().find("✗ FAILED (line 13): a check that no longer holds"), std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("left 4, right 1000"), std::string::npos) << out.str();

  std::string path = temp_file("drift.md", text);
  CmdResult r = run("lesson '" + path + "' --plain");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("1 problem(s)"), std::string::npos) << r.out;
  fs::remove(path);
}

TEST(Lessons, AFailingCommandIsReported) {
  Lesson l = parse_lesson(
      "# X\n\n## S\n\nPaper: p\nCode: app/lesson/lesson.cpp f\n\n```dsv3\nroute 99\n```\n", "x.md");
  std::ostringstream out;
  EXPECT_EQ(play_plain(l, out, 80), 1);
  EXPECT_NE(out.str().find("x.md:9: `route 99` failed"), std::string::npos) << out.str();
}

TEST(LessonCli, ListsTheLessons) {
  CmdResult r = run("lesson");
  EXPECT_EQ(r.status, 0) << r.out;
  for (const auto& f : lesson_files(kLessons))
    EXPECT_NE(r.out.find(load_lesson(f).title), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("steps"), std::string::npos);
}

TEST(LessonCli, PlainPlaysALesson) {
  CmdResult r = run("lesson 1 --plain");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Step 1/"), std::string::npos);
  EXPECT_NE(r.out.find("all checks passed"), std::string::npos);
}

TEST(LessonCli, MalformedFileGivesFileLineAndProblem) {
  std::string path = temp_file(
      "bad.md",
      "# Bad\n\n## Step\n\nPaper: p\nCode: app/lesson/lesson.cpp f\n\n```dsv3\nrout 1\n```\n");
  CmdResult r = run("lesson '" + path + "' --plain");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("dsv3: " + path + ":9: unknown command 'rout' (did you mean route?)"),
            std::string::npos)
      << r.out;
  fs::remove(path);
}

TEST(LessonCli, UnknownLessonListsTheKnownOnes) {
  CmdResult r = run("lesson 99 --plain");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("no lesson '99'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("01-mla-kv-cache"), std::string::npos) << r.out;
}

TEST(LessonCli, TheExplorerLanguageHasALessonCommand) {
  CmdResult r = run("exec 'lesson'");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Lessons ("), std::string::npos) << r.out;
}

TEST(LessonScreen, FitsSmallAndLargeTerminals) {
  Lesson l = load_lesson(resolve_lesson("3", kLessons));
  Player p(l, panel_width(80));
  const StepResult& r = p.show(1);
  ScreenView v;
  v.step = 1;
  std::string small = viz::render_plain(lesson_screen(l, r, v, 80, 24));
  EXPECT_NE(small.find("dsv3 lesson 3"), std::string::npos) << small;
  EXPECT_NE(small.find("step 2/"), std::string::npos) << small;
  EXPECT_NE(small.find("2. " + l.steps[1].title), std::string::npos) << small;
  EXPECT_NE(small.find("› route 1"), std::string::npos) << small;
  EXPECT_NE(small.find("q leave"), std::string::npos) << small;
  p.set_width(panel_width(160));
  const StepResult& r2 = p.rerun(1);
  std::string large = viz::render_plain(lesson_screen(l, r2, v, 160, 48));
  EXPECT_NE(large.find("│"), std::string::npos) << "side by side panes";
  EXPECT_NE(large.find("Paper:"), std::string::npos) << large;
  std::string tiny = viz::render_plain(lesson_screen(l, r2, v, 60, 20));
  EXPECT_NE(tiny.find("80"), std::string::npos) << tiny;
}

TEST(LessonPlayer, BackShowsTheSameResultAndRerunStartsFresh) {
  Lesson l = load_lesson(resolve_lesson("3", kLessons));
  Player p(l, 80);
  std::string first = viz::render_plain(outputs_canvas(p.show(1), 80));
  p.show(4);  // moves the session forward (step 3)
  EXPECT_EQ(viz::render_plain(outputs_canvas(p.show(1), 80)), first);
  EXPECT_EQ(viz::render_plain(outputs_canvas(p.rerun(1), 80)), first);
  EXPECT_TRUE(p.show(4).ok());
}

}  // namespace
}  // namespace dsv3::app::lesson
