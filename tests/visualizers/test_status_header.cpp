// Issue 16: the status line lets a message win over the key hints, shows completions while
// typing, and the header says when live balancing is on.
#include <gtest/gtest.h>

#include <string>

#include "tests/visualizers/explorer_fixture.h"
#include "visualizers/canvas.h"
#include "visualizers/explorer_screen.h"

namespace dsv3::viz {
namespace {

std::string last_line(const Canvas& c) {
  std::string s = render_plain(c);
  s.pop_back();  // the final newline
  return s.substr(s.rfind('\n') + 1);
}

TEST(StatusLine, AMessageWinsOverTheKeyHints) {
  const auto f = testing::make_fixture();
  ScreenState st;
  st.hints = "→ step  ← back  ↑↓ layer  Tab panel  : cmd  ? help  q quit";
  st.message = "route: layer 0 is dense (first_k_dense_replace = 1): it has no router to show";
  const std::string line = last_line(compose_screen(f.view(), st, 80, 24).canvas);
  EXPECT_NE(line.find(st.message), std::string::npos) << line;  // whole, not clipped
  EXPECT_EQ(line.find("q quit"), std::string::npos) << line;    // no room left for hints
  st.message = "ok";
  const std::string short_msg = last_line(compose_screen(f.view(), st, 80, 24).canvas);
  EXPECT_NE(short_msg.find("q quit"), std::string::npos) << short_msg;  // room for both
}

TEST(StatusLine, CompletionsShowWhileTyping) {
  const auto f = testing::make_fixture();
  ScreenState st;
  st.input = ":ro";
  st.input_cursor = 3;
  st.input_hint = "route  ";
  const std::string line = last_line(compose_screen(f.view(), st, 80, 24).canvas);
  EXPECT_EQ(line.rfind(":ro  route", 0), 0u) << line;
}

TEST(Header, SaysWhenLiveBalancingIsOn) {
  const auto f = testing::make_fixture();
  ExplorerView v = f.view();
  EXPECT_EQ(render_plain(header_bar(v, 120)).find("balancing"), std::string::npos);
  v.balancing = true;
  v.gamma = 0.01;
  EXPECT_NE(render_plain(header_bar(v, 120)).find("balancing γ=0.01"), std::string::npos)
      << render_plain(header_bar(v, 120));
}

}  // namespace
}  // namespace dsv3::viz

namespace dsv3::viz {
namespace {

// `z` (ScreenState::full): at 160x48 the active panel takes the whole width instead of the 2x2
// grid of four panels.
TEST(Layout, FullWidthShowsTheActivePanelAlone) {
  const auto f = testing::make_fixture();
  ScreenState st;
  st.active = Panel::kRouting;
  const std::string grid = render_plain(compose_screen(f.view(), st, 160, 48).canvas);
  EXPECT_NE(grid.find("6 Logits ─"), std::string::npos) << grid;  // a companion panel's frame
  st.full = true;
  const std::string full = render_plain(compose_screen(f.view(), st, 160, 48).canvas);
  EXPECT_EQ(full.find("6 Logits ─"), std::string::npos) << full;
  EXPECT_NE(full.find("1 Routing ─"), std::string::npos) << full;
}

}  // namespace
}  // namespace dsv3::viz
