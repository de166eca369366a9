// Lessons on a projector (issue 16): the live pane never cuts a number at 120 columns, a slow
// step says it is computing, lessons open by name, and the plain player pads nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "app/lesson/lesson.h"
#include "app/lesson/player.h"
#include "tests/support/shell.h"
#include "visualizers/canvas.h"

namespace dsv3::app::lesson {
namespace {

namespace fs = std::filesystem;

const std::string kLessons = std::string(DSV3_TEST_DATA) + "/../../lessons";

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Lesson 1's `mla` tables are wider than the live pane at 120 columns: they used to end in
// "absorbed 69.6" (for 69.6B) and "4.77 MiB naiv". Every word of every output must now be on
// the screen's pane, whole, at 80, 120 and 160 columns.
TEST(LessonScreen, TheLivePaneNeverCutsAWord) {
  Lesson l = load_lesson(resolve_lesson("1", kLessons));
  for (int w : {120, 80, 160}) {
    Player p(l, panel_width(w));
    for (int i = 0; i < p.steps(); ++i) {
      const StepResult& r = p.show(i);
      std::string pane = viz::render_plain(outputs_canvas(r, panel_width(w)));
      for (const Shown& s : r.shown)
        for (const std::string& word : words(s.out.text))
          EXPECT_NE(pane.find(word), std::string::npos)
              << "'" << word << "' of `" << s.command << "` at " << w << " columns:\n"
              << pane;
    }
  }
}

TEST(LessonScreen, LongOutputLinesWrapUnderTheirStart) {
  StepResult r;
  Shown s;
  s.command = "mla";
  s.out.text = "  attention FLOPs per token at 4096 context: naive 20.5B, absorbed 69.6B\n";
  r.shown.push_back(s);
  std::string pane = viz::render_plain(outputs_canvas(r, 50));
  EXPECT_NE(pane.find("69.6B"), std::string::npos) << pane;
  EXPECT_NE(pane.find("20.5B"), std::string::npos) << pane;
  std::istringstream in(pane);
  int rows = 0;
  for (std::string line; std::getline(in, line); ++rows) EXPECT_LE(viz::display_width(line), 50);
  EXPECT_GE(rows, 3);  // the title, the line and its continuation
}

TEST(LessonScreen, ABusyStepSaysSoInTheStatusLine) {
  Lesson l = load_lesson(resolve_lesson("3", kLessons));
  Player p(l, panel_width(100));
  ScreenView v;
  std::string idle = viz::render_plain(lesson_screen(l, p.show(0), v, 100, 30));
  EXPECT_NE(idle.find("n next lesson"), std::string::npos) << idle;
  EXPECT_EQ(idle.find("computing"), std::string::npos) << idle;
  v.busy = "computing step 2 of 6 …";
  std::string busy = viz::render_plain(lesson_screen(l, p.show(0), v, 100, 30));
  EXPECT_NE(busy.find("computing step 2 of 6"), std::string::npos) << busy;
  EXPECT_EQ(busy.find("q leave"), std::string::npos) << busy;
}

TEST(LessonResolve, ByNumberByNameAndByPartOfTheName) {
  auto name = [](const std::string& which) {
    return fs::path(resolve_lesson(which, kLessons)).stem().string();
  };
  EXPECT_EQ(name("6"), "06-fp8");
  EXPECT_EQ(name("fp8"), "06-fp8");
  EXPECT_EQ(name("FP8"), "06-fp8");
  EXPECT_EQ(name("dual"), "07-dualpipe");
  EXPECT_EQ(name("03-deep"), "03-deepseekmoe-routing");
  EXPECT_EQ(name("routing"), "03-deepseekmoe-routing");  // a part of the name
  EXPECT_EQ(name("yarn"), "02-yarn");
  try {
    resolve_lesson("m", kLessons);  // mla, multi-token-prediction, model-at-scale
    ADD_FAILURE() << "an ambiguous name must not pick one";
  } catch (const LessonError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("several"), std::string::npos) << what;
    EXPECT_NE(what.find("01-mla-kv-cache"), std::string::npos) << what;
    EXPECT_NE(what.find("08-model-at-scale"), std::string::npos) << what;
  }
  EXPECT_THROW(resolve_lesson("nosuchlesson", kLessons), LessonError);
}

TEST(LessonCli, LessonByNameAndNoTrailingBlanksInPlain) {
  auto r = dsv3::test_support::shell("DSV3_LESSONS='" + kLessons + "' '" +
                                     std::string(DSV3_BINARY) + "' lesson fp8 --plain 2>&1");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Lesson 6:"), std::string::npos) << r.out.substr(0, 400);
  auto y = dsv3::test_support::shell("DSV3_LESSONS='" + kLessons + "' '" +
                                     std::string(DSV3_BINARY) + "' lesson yarn --plain 2>&1");
  EXPECT_EQ(y.status, 0) << y.out;
  std::istringstream in(y.out);
  int n = 0, blank_run = 0;
  for (std::string line; std::getline(in, line); ++n) {
    EXPECT_TRUE(line.empty() || line.back() != ' ') << "line " << n + 1 << ": '" << line << "'";
    blank_run = line.empty() ? blank_run + 1 : 0;
    EXPECT_LT(blank_run, 2) << "blank padding at line " << n + 1;
  }
}

}  // namespace
}  // namespace dsv3::app::lesson
