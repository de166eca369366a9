// Issue 16 ("views that must not contradict themselves or the paper"), the routing and logits
// panels: the b row is the token's own biases (s + b = s+b, eq. 16, whatever today's biases
// are), its ×100 scale sits in the row label, a dropped group and a low score differ without
// colour, and random weights say so on the Logits panel.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/routing_text.h"
#include "tests/visualizers/explorer_fixture.h"
#include "visualizers/explorer_columns.h"
#include "visualizers/explorer_panels.h"
#include "visualizers/explorer_screen.h"

namespace dsv3::viz {
namespace {

using testing::make_fixture;

std::vector<std::string> lines_of(const std::string& t) {
  std::vector<std::string> out;
  std::istringstream in(t);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

using test_support::gate_rows;
using test_support::GateRows;

// s + b = s+b on every expert, within the rounding of three-character cells.
void expect_rows_add_up(const GateRows& g, const std::string& where) {
  ASSERT_FALSE(g.s.empty()) << where;
  ASSERT_EQ(g.s.size(), g.b.size()) << where;
  ASSERT_EQ(g.s.size(), g.sb.size()) << where;
  // Each of s, b and s+b is shown to 0.01 or better: half a unit of rounding each.
  for (size_t e = 0; e < g.s.size(); ++e)
    EXPECT_NEAR(g.s[e] + g.b[e], g.sb[e], 3 * 0.0051) << where << " expert " << e;
}

TEST(RoutingIssue16, BiasRowIsTheBiasInForceWhenTheTokenWasRouted) {
  auto f = make_fixture();
  ExplorerView v = f.view();
  for (int layer = 1; layer < 4; ++layer)
    for (int pos = 0; pos < (int)f.traces.size(); ++pos) {
      v.layer = layer;
      v.cursor = pos;
      std::string before = render_plain(routing_panel(v, 78, 0));
      expect_rows_add_up(gate_rows(before), fmt::format("layer {} position {}", layer, pos));
      // Live balancing moved every bias since: the panel must not change (it shows b as it was).
      ExplorerView later = v;
      for (auto& b : later.bias)
        for (float& x : b) x += 0.05f;
      EXPECT_EQ(render_plain(routing_panel(later, 78, 0)), before);
      EXPECT_EQ(render_plain(routing_panel(later, 50, 0)), render_plain(routing_panel(v, 50, 0)))
          << "the narrow list's b= too";
    }
}

TEST(RoutingIssue16, TraceWithoutRecordedBiasDerivesItFromTheBiasedScores) {
  auto f = make_fixture();
  std::string recorded = render_plain(routing_panel(f.view(), 78, 0));
  for (auto& tt : f.traces)
    for (auto& lt : tt.layers) lt.bias.clear();
  ExplorerView v = f.view();
  for (auto& b : v.bias) std::fill(b.begin(), b.end(), 0.5f);  // today's: far off
  std::string derived = render_plain(routing_panel(v, 78, 0));
  expect_rows_add_up(gate_rows(derived), "derived");
  EXPECT_EQ(gate_rows(derived).b_scale, gate_rows(recorded).b_scale);
}

TEST(RoutingIssue16, BiasScaleIsInTheRowLabelAndFitsAt80x24) {
  auto f = make_fixture();
  std::string panel = render_plain(routing_panel(f.view(), 78, 0));
  EXPECT_EQ(gate_rows(panel).b_scale, 100) << panel;
  EXPECT_EQ(panel.find("shown ×100"), std::string::npos) << "no separate scale note";
  ScreenState s;
  std::string screen = render_plain(compose_screen(f.view(), s, 80, 24).canvas);
  EXPECT_NE(screen.find("b×100"), std::string::npos) << screen;
  // Biases up to 0.2: three-character cells still show b×100 (-.14 as "-14", not "-.1"), so
  // the rows add up; cells of five characters print b as it is, labelled plain `b`.
  ExplorerView v = f.view();
  for (auto& tt : f.traces)
    for (auto& lt : tt.layers)
      if (!lt.bias.empty()) {
        for (float& b : lt.bias) b *= 20;
        lt.router = model::route(f.cfg, lt.router.logits, lt.bias);
      }
  std::string big = render_plain(routing_panel(v, 78, 0));
  EXPECT_EQ(gate_rows(big).b_scale, 100) << big;
  expect_rows_add_up(gate_rows(big), "b up to 0.2, 78 columns");
  std::string wide = render_plain(routing_panel(v, 160, 0));
  EXPECT_EQ(gate_rows(wide).b_scale, 1) << wide;
  expect_rows_add_up(gate_rows(wide), "b up to 0.2, 160 columns");
}

// Without colour (render_plain is what NO_COLOR shows), a dropped group's `·` and a kept
// group's lowest score must be different glyphs.
TEST(RoutingIssue16, DroppedGroupAndLowScoreDifferInMono) {
  auto f = make_fixture();
  ExplorerView v = f.view();
  const int layer = 1;
  model::RouteResult& r = f.traces[v.cursor].layers[layer].router;
  // Make a kept, unchosen expert the layer's lowest score: the case that drew `·` before.
  int low = -1;
  const int per_group = static_cast<int>(f.cfg.n_routed_experts / f.cfg.n_group);
  for (int e = 0; e < (int)r.scores.size() && low < 0; ++e)
    if (std::count(r.groups_kept.begin(), r.groups_kept.end(), e / per_group) &&
        !std::count(r.topk_idx.begin(), r.topk_idx.end(), e))
      low = e;
  ASSERT_GE(low, 0);
  r.scores[low] = *std::min_element(r.scores.begin(), r.scores.end()) - 0.1f;
  ExpertColumns k = ExpertColumns::fit(f.cfg, 78);
  std::vector<std::string> rows = lines_of(render_plain(routing_panel(v, 78, 0)));
  int checked = 0;
  for (int l = 1; l < 4; ++l) {
    const model::RouteResult& rr = f.traces[v.cursor].layers[l].router;
    auto row = std::find_if(rows.begin(), rows.end(), [&](const std::string& s) {
      auto w = test_support::words_of(s);
      return (w.size() > 1 && w[0] == "L" + std::to_string(l)) ||
             (w.size() > 2 && w[0] == "▶" && w[1] == "L" + std::to_string(l));
    });
    ASSERT_NE(row, rows.end()) << "layer " << l;
    std::u32string cells = utf8_decode(*row);
    for (int e = 0; e < k.shown; ++e) {
      ASSERT_LT(k.x(e), (int)cells.size());
      char32_t g = cells[k.x(e)];
      bool kept = std::count(rr.groups_kept.begin(), rr.groups_kept.end(), e / per_group) > 0;
      bool chosen = std::count(rr.topk_idx.begin(), rr.topk_idx.end(), e) > 0;
      if (chosen)
        EXPECT_EQ(g, U'●');
      else if (!kept)
        EXPECT_EQ(g, U'·') << "layer " << l << " expert " << e;
      else
        EXPECT_TRUE(g == U'░' || g == U'▒' || g == U'▓' || g == U'█')
            << "layer " << l << " expert " << e << " drew " << utf8_encode(g);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * 16);
  std::u32string low_row = utf8_decode(*std::find_if(
      rows.begin(), rows.end(), [](auto& s) { return s.find("▶ L1") != std::string::npos; }));
  EXPECT_EQ(low_row[k.x(low)], U'░') << "the lowest kept score is the lightest shade";
  std::string legend = render_plain(routing_panel(v, 78, 0));
  EXPECT_NE(legend.find("░▒▓█ score s"), std::string::npos);
  EXPECT_NE(legend.find("· dropped group"), std::string::npos);
}

TEST(LogitsIssue16, RandomWeightsAreSaidOutLoud) {
  auto f = make_fixture();
  ExplorerView v = f.view();
  std::string random = render_plain(logits_panel(v, 78, 0));
  EXPECT_NE(random.find("random weights, seed 0"), std::string::npos) << random;
  EXPECT_NE(random.find("35.00%"), std::string::npos) << "the candidates still show";
  v.weights_note.clear();  // a trained checkpoint
  std::string trained = render_plain(logits_panel(v, 78, 0));
  EXPECT_EQ(trained.find("random"), std::string::npos) << trained;
  ScreenState s;
  s.active = Panel::kLogits;
  std::string screen = render_plain(compose_screen(f.view(), s, 80, 24).canvas);
  EXPECT_NE(screen.find("this ranking says nothing about language"), std::string::npos) << screen;
  EXPECT_NE(screen.find("0.72%"), std::string::npos) << "all ten candidates still fit at 80x24";
}

}  // namespace
}  // namespace dsv3::viz
