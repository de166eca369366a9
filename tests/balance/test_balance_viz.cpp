// The balance pictures: braille curves, load bars, sparklines.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "visualizers/balance_load.h"
#include "visualizers/balance_plot.h"
#include "visualizers/balance_report.h"

namespace dsv3::viz {
namespace {

int count_glyphs(const Canvas& c, char32_t lo, char32_t hi) {
  int n = 0;
  for (int y = 0; y < c.height(); ++y)
    for (int x = 0; x < c.width(); ++x) n += c.at(x, y).glyph >= lo && c.at(x, y).glyph <= hi;
  return n;
}

TEST(BalancePlot, BrailleCurveFallsFromTopLeftToBottomRight) {
  std::vector<double> y;
  for (int i = 0; i < 400; ++i) y.push_back(4.4 * std::exp(-i / 60.0) + 0.12);
  const PlotSeries s{"γ=1e-3", y, {}, kDefault};
  const Canvas c = maxvio_plot(std::span<const PlotSeries>(&s, 1), 60, 14, 0.12);
  EXPECT_EQ(c.width(), 60);
  EXPECT_EQ(c.height(), 14);
  EXPECT_GT(count_glyphs(c, 0x2801, 0x28ff), 30);
  // The first data column is high, the last low: find the rows of braille in both.
  int first_row = -1, last_row = -1, left = c.width(), right = -1;
  for (int x = 0; x < c.width(); ++x)
    for (int yy = 0; yy < c.height(); ++yy)
      if (c.at(x, yy).glyph >= 0x2801 && c.at(x, yy).glyph <= 0x28ff) {
        if (x < left) left = x, first_row = yy;
        if (x >= right) right = x, last_row = yy;
      }
  EXPECT_LT(first_row, last_row);
  const std::string text = render_plain(c);
  EXPECT_NE(text.find("noise floor"), std::string::npos);
  EXPECT_NE(text.find("γ=1e-3"), std::string::npos);
  EXPECT_NE(text.find("step"), std::string::npos);
}

TEST(BalancePlot, EmptyAndDegenerateInputsDoNotCrash) {
  const Canvas a = line_plot({}, PlotOptions{});
  EXPECT_GT(a.width(), 0);
  const PlotSeries flat{"flat", std::vector<double>(10, 0.0), {}, kDefault};
  const Canvas b = maxvio_plot(std::span<const PlotSeries>(&flat, 1), 40, 8);  // log of 0
  EXPECT_EQ(b.height(), 8);
  const Canvas tiny =
      line_plot(std::span<const PlotSeries>(&flat, 1), PlotOptions{5, 3, "", "", false, 0, 0, {}});
  EXPECT_GE(tiny.width(), 5);
}

TEST(BalancePlot, Sparkline) {
  const std::vector<double> v = {0, 1, 2, 4, 8};
  EXPECT_EQ(sparkline(v, 10), U"▁▂▃▅█");
  EXPECT_EQ(sparkline(v, 2), U"▅█");  // the last values
  EXPECT_TRUE(sparkline({}, 5).empty());
}

TEST(BalancePlot, ScatterPutsLabelledMarkers) {
  const std::vector<ScatterPoint> p = {{2.5, 0.34, "none", U'■', 250},
                                       {0.25, 0.43, "α=1", U'●', 203},
                                       {0.08, 0.36, "γ=1e-3", U'◆', 114}};
  const Canvas c = scatter_plot(p, 60, 14, "trade-off", "MaxVio", "MSE");
  const std::string t = render_plain(c);
  for (const char* s : {"■", "●", "◆", "none", "α=1", "γ=1e-3", "MaxVio"})
    EXPECT_NE(t.find(s), std::string::npos) << s;
}

TEST(BalanceLoad, HotExpertIsRedAndTallest) {
  std::vector<double> load(16, 0.05);
  load[3] = 0.25;
  double s = 0;
  for (double l : load) s += l;
  for (double& l : load) l /= s;
  std::vector<float> bias(16, 0.1f);
  bias[3] = -0.3f;
  LoadBarsOptions o;
  o.width = 50;
  o.height = 10;
  const Canvas c = expert_load_bars(load, bias, o);
  // Expert 3's column reaches the top bar row in red.
  bool red_top = false;
  for (int x = 0; x < c.width(); ++x)
    if (c.at(x, 0).glyph == U'█' && c.at(x, 0).style.fg == 203) red_top = true;
  EXPECT_TRUE(red_top);
  const std::string t = render_plain(c);
  EXPECT_NE(t.find("MaxVio"), std::string::npos);
  EXPECT_NE(t.find("1/N"), std::string::npos);
  bool low_bias = false;  // its bias sits below the mean: the strip grows downward in orange
  for (int x = 0; x < c.width(); ++x)
    for (int y = 0; y < c.height(); ++y) low_bias |= c.at(x, y).style.fg == 209;
  EXPECT_TRUE(low_bias);
}

TEST(BalanceLoad, ManyExpertsAreBucketed) {
  std::vector<double> load(256, 1.0 / 256);
  const Canvas c = expert_load_bars(load, {}, LoadBarsOptions{60, 8, "", false});
  EXPECT_NE(render_plain(c).find("experts per column"), std::string::npos);
}

TEST(BalanceReport, SmoothKeepsLengthAndMean) {
  const std::vector<double> v = {0, 0, 3, 0, 0};
  const auto s = smooth(v, 3);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_DOUBLE_EQ(s[2], 1.0);
  EXPECT_DOUBLE_EQ(s[0], 0.0);
}

}  // namespace
}  // namespace dsv3::viz
