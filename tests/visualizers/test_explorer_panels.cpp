// Explorer panels: snapshots of the whole screen with each panel active at 80x24 and 160x48,
// and checks of what each panel must say. DSV3_UPDATE_SNAPSHOTS=1 rewrites the snapshot files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <sstream>

#include "tests/support/snapshot.h"
#include "tests/visualizers/explorer_fixture.h"
#include "visualizers/explorer_panels.h"
#include "visualizers/explorer_screen.h"
#include "visualizers/explorer_style.h"

namespace dsv3::viz {
namespace {

using testing::make_fixture;

using dsv3::test_support::expect_snapshot;
using dsv3::test_support::snapshot_path;

const std::vector<KeyHelp> kKeys = {{"→ l", "step forward"}, {"← h", "step back"}, {"q", "quit"}};

std::string screen(Panel p, int w, int h, bool help = false) {
  auto f = make_fixture();
  ExplorerView v = f.view();
  v.keys_shown = true;  // the explorer's screen: panels name its keys
  ScreenState s;
  s.active = p;
  s.hints = "→ step  ← back  ? help  q quit";
  s.help = help;
  s.keys = &kKeys;
  model::Config real = model::resolve_config("v3-671b");
  real.name = "DeepSeek-V3 671B";
  s.real = &real;
  return render_plain(compose_screen(v, s, w, h).canvas);
}

class PanelSnapshot : public ::testing::TestWithParam<std::tuple<Panel, int, int>> {};

TEST_P(PanelSnapshot, MatchesCommittedText) {
  auto [p, w, h] = GetParam();
  std::string name =
      std::string(panel_title(p)) + "_" + std::to_string(w) + "x" + std::to_string(h);
  for (char& c : name)
    if (c == ' ') c = '_';
  std::string text = screen(p, w, h);
  // Every frame is exactly the terminal's size.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), h);
  expect_snapshot(name, text);
}

std::vector<std::tuple<Panel, int, int>> all_panels() {
  std::vector<std::tuple<Panel, int, int>> out;
  for (int p = 0; p < kPanelCount; ++p)
    for (auto [w, h] : {std::pair{80, 24}, std::pair{160, 48}})
      out.emplace_back(static_cast<Panel>(p), w, h);
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllPanels, PanelSnapshot, ::testing::ValuesIn(all_panels()),
                         [](const auto& info) {
                           std::string n = panel_title(std::get<0>(info.param));
                           n.erase(std::remove(n.begin(), n.end(), ' '), n.end());
                           return n + "_" + std::to_string(std::get<1>(info.param)) + "x" +
                                  std::to_string(std::get<2>(info.param));
                         });

TEST(ExplorerScreen, HelpOverlaySnapshot) {
  expect_snapshot("help_80x24", screen(Panel::kRouting, 80, 24, true));
}

TEST(ExplorerScreen, TooSmallSaysWhatSizeIsNeeded) {
  std::string t = screen(Panel::kRouting, 40, 12);
  EXPECT_NE(t.find("Terminal too small"), std::string::npos);
  EXPECT_NE(t.find("now 40x12"), std::string::npos);
  EXPECT_NE(t.find("needs 80x24"), std::string::npos);
  expect_snapshot("too_small_40x12", t);
}

TEST(ExplorerScreen, TabsTokensAndGridAreClickable) {
  auto f = make_fixture();
  ScreenState s;
  Screen sc = compose_screen(f.view(), s, 80, 24);
  int tabs = 0, tokens = 0, layers = 0, experts = 0;
  for (const Hit& h : sc.hits) {
    tabs += h.kind == Hit::kTab;
    tokens += h.kind == Hit::kToken;
    layers += h.kind == Hit::kLayer;
    experts += h.kind == Hit::kExpert;
    EXPECT_TRUE(sc.canvas.inside(h.x, h.y));
  }
  EXPECT_GE(tabs, kPanelCount);
  EXPECT_EQ(tokens, 12);
  EXPECT_EQ(layers, 4);
  EXPECT_EQ(experts, 3 * 16);  // three MoE layers of the tiny model
}

TEST(RoutingPanel, MarksTheChosenExpertsAndCitesTheEquations) {
  auto f = make_fixture();
  ExplorerView v = f.view();
  std::string t = render_plain(routing_panel(v, 78, 0));
  // Layer 1 of the cursor's token chose K experts: as many ● in its row as K.
  std::istringstream in(t);
  std::string line;
  int rows_with_k = 0;
  while (std::getline(in, line)) {
    if (line.find("L1") == std::string::npos && line.find("L2") == std::string::npos) continue;
    size_t n = 0, pos = 0;
    while ((pos = line.find("●", pos)) != std::string::npos) ++n, pos += 3;
    if (n == 4 * 3) ++rows_with_k;  // K = 4 experts, 3 cells each at this width
  }
  EXPECT_EQ(rows_with_k, 2);
  for (const char* eq : {"(15)", "(16)", "(13)", "dense FFN", "kept", "drop"})
    EXPECT_NE(t.find(eq), std::string::npos) << eq;
}

TEST(RoutingPanel, SelectedDenseLayerSaysSo) {
  auto f = make_fixture();
  ExplorerView v = f.view();
  v.layer = 0;
  EXPECT_NE(render_plain(routing_panel(v, 78, 0)).find("Layer 0 is dense"), std::string::npos);
}

TEST(RoutingPanel, NarrowFallsBackToAList) {
  auto f = make_fixture();
  std::string t = render_plain(routing_panel(f.view(), 50, 0));
  EXPECT_NE(t.find("#1 expert"), std::string::npos);
}

TEST(LoadPanel, CountsEveryRoutedTokenOnce) {
  auto f = make_fixture();
  ExplorerView v = f.view();
  auto counts = expert_counts(v, v.cursor);
  for (int l = 1; l < 4; ++l) {
    int64_t total = 0;
    for (int64_t c : counts[l]) total += c;
    EXPECT_EQ(total, (v.cursor + 1) * 4) << "layer " << l;
  }
  EXPECT_EQ(std::accumulate(counts[0].begin(), counts[0].end(), int64_t{0}), 0);
  EXPECT_NE(render_plain(load_panel(v, 78, 0)).find("MaxVio"), std::string::npos);
}

TEST(LoadPanel, MaxVio) {
  EXPECT_DOUBLE_EQ(max_vio({2, 2, 2, 2}), 0.0);
  EXPECT_DOUBLE_EQ(max_vio({4, 0, 0, 0}), 3.0);
  EXPECT_DOUBLE_EQ(max_vio({0, 0}), 0.0);
}

TEST(KvPanel, MlaAgainstBaselinesAtRealScale) {
  auto f = make_fixture();
  model::Config real = model::resolve_config("v3-671b");
  auto forms = kv_forms(real);
  ASSERT_EQ(forms.size(), 5u);
  EXPECT_EQ(forms[0].per_token_layer, 512 + 64);           // d_c + d^R_h
  EXPECT_EQ(forms[1].per_token_layer, 2 * 128);            // MQA: 2 d_h
  EXPECT_EQ(forms[3].per_token_layer, 2 * 128 * 128);      // MHA: 2 n_h d_h (V2 Table 1)
  EXPECT_EQ(forms[4].per_token_layer, 128 * (192 + 128));  // naive MLA: full K and V per head
  std::string t = render_plain(kv_panel(f.view(), &real, 100, 0));
  // 128K tokens x 61 layers x 576 values x 2 bytes = 8.58 GiB.
  EXPECT_NE(t.find("8.58 GiB"), std::string::npos) << t;
  EXPECT_NE(t.find("10 tokens × 4 layers × 40 values × 4 B"), std::string::npos) << t;
}

TEST(AttentionPanel, OneRowPerHead) {
  auto f = make_fixture();
  std::string t = render_plain(attention_panel(f.view(), 78, 0));
  for (int h = 0; h < 4; ++h) EXPECT_NE(t.find("head " + std::to_string(h)), std::string::npos);
  EXPECT_NE(t.find("strongest"), std::string::npos);
}

TEST(LogitsPanel, MarksTheTokenThatCameNext) {
  auto f = make_fixture();
  ExplorerView v = f.view();
  v.cursor = f.traces.size() - 1;  // last position: nothing came next yet
  std::string last = render_plain(logits_panel(v, 78, 0));
  EXPECT_EQ(last.find("◀ next"), std::string::npos);
  EXPECT_NE(last.find("35.00%"), std::string::npos);
}

TEST(Style, NumbersFitTheirColumns) {
  EXPECT_EQ(style::fit_num(0.523, 3), ".52");
  EXPECT_EQ(style::fit_num(-0.05, 3), "-.1");
  EXPECT_EQ(style::fit_num(0.523, 5), "0.523");
  EXPECT_EQ(style::fit_num(12.0, 3), "12");
  EXPECT_EQ(style::fit_num(2.5, 3), "2.5");
  EXPECT_EQ(style::human_bytes(7680), "7.50 KiB");
  EXPECT_EQ(style::human_count(131072), "128K");
  EXPECT_EQ(style::hbar(1.0, 3), "███");
  EXPECT_EQ(style::hbar(0.0, 3), "");
}

}  // namespace
}  // namespace dsv3::viz
