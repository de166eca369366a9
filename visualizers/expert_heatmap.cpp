#include "visualizers/expert_heatmap.h"

#include <fmt/format.h>

#include <algorithm>

#include "visualizers/explorer_columns.h"
#include "visualizers/explorer_style.h"

namespace dsv3::viz {

namespace st = style;

namespace {
constexpr int kLabelW = 7;  // "  L12  "
constexpr int kMaxW = 9;    // " max 12.3"
}  // namespace

double expert_load_scale(std::span<const ExpertLoadPanel> panels) {
  double mx = 2.0;
  for (const ExpertLoadPanel& p : panels)
    for (const auto& row : p.relative_load)
      for (double v : row) mx = std::max(mx, v);
  return mx;
}

Canvas draw_expert_heatmap(const model::Config& c, const ExpertLoadPanel& p, double vmax,
                           int width) {
  ExpertColumns k = ExpertColumns::fit(c, width - kMaxW, kLabelW);
  k.cw = std::min(k.cw, 3);  // a heat map reads best with near-square cells
  k.shown = k.experts;       // every expert, even when wider than asked
  const int grid_end = k.x(k.experts - 1) + k.cw;
  const int w = std::max(width, grid_end + kMaxW);
  const int h = 3 + static_cast<int>(p.layers.size());
  Canvas cv(w, h);
  int x = cv.text(0, 0, p.title, st::kAccent);
  if (!p.subtitle.empty()) cv.text(x + 2, 0, p.subtitle, st::kDim);

  // Expert numbers over the columns: every group's first expert, or every expert when wide.
  cv.text(0, 1, "layer", st::kLabel);
  for (int e = 0; e < k.experts; ++e) {
    std::string num = std::to_string(e);
    bool fits = static_cast<int>(num.size()) < k.cw;
    bool mark = fits || e % k.per_group == 0;
    if (mark && k.x(e) + static_cast<int>(num.size()) <= grid_end)
      cv.text(k.x(e), 1, num, st::kLabel);
  }
  cv.text(grid_end + 1, 1, "max", st::kLabel);

  double sum_max = 0;
  for (size_t r = 0; r < p.layers.size(); ++r) {
    const int y = 2 + static_cast<int>(r);
    cv.text(0, y, fmt::format("  L{}", p.layers[r]), st::kLabel);
    const auto& row = p.relative_load[r];
    double mx = 0;
    for (int e = 0; e < k.experts && e < static_cast<int>(row.size()); ++e) {
      const double f = row[e] / vmax;
      mx = std::max(mx, row[e]);
      for (int i = 0; i < k.cw; ++i)
        cv.put(k.x(e) + i, y, st::shade(f), Style{st::heat_color(f), kDefault, kNone});
    }
    sum_max += mx;
    cv.text(grid_end + 1, y, st::fit_num(mx, kMaxW - 1), mx > 2.0 ? st::kWarn : st::kPlain);
  }
  // The summary the paper's Figure 9 comparison rests on: how far the busiest expert of a
  // layer is from the balanced load, averaged over the MoE layers.
  const double mean_max = p.layers.empty() ? 0.0 : sum_max / static_cast<double>(p.layers.size());
  st::text_clip(
      cv, 0, h - 1,
      fmt::format("  max = the layer's busiest expert; mean over the layers {:.2f}", mean_max), w,
      st::kDim);
  return cv;
}

Canvas draw_expert_heatmap_legend(double vmax, int width) {
  Canvas cv(std::max(width, 60), 2);
  // The colour ramp and the glyph ramp side by side, both over relative load 0 .. vmax.
  int x = cv.text(0, 0, "scale  0 ", st::kLabel);
  constexpr int kSteps = 20;
  for (int i = 0; i < kSteps; ++i) {
    const double f = (i + 0.5) / kSteps;
    cv.put(x++, 0, st::shade(f), Style{st::heat_color(f), kDefault, kNone});
  }
  x = cv.text(x, 0, fmt::format(" {:.3g}", vmax), st::kLabel);
  cv.text(x + 2, 0,
          fmt::format("(1 = balanced, at {:.0f}% of the scale)", 100.0 / std::max(vmax, 1e-9)),
          st::kDim);
  // Each glyph's range: shade() rounds f * 4 to the nearest of its five glyphs.
  std::string ranges = "glyphs ";
  static constexpr const char* kGlyph[5] = {"·", "░", "▒", "▓", "█"};
  for (int g = 0; g < 5; ++g) {
    const double lo = std::max(0.0, (g - 0.5) / 4) * vmax, hi = std::min(1.0, (g + 0.5) / 4) * vmax;
    ranges += g == 4 ? fmt::format("{} ≥ {:.2g}", kGlyph[g], lo)
                     : fmt::format("{} {:.2g}–{:.2g}   ", kGlyph[g], lo, hi);
  }
  cv.text(0, 1, ranges, st::kDim);
  return cv;
}

}  // namespace dsv3::viz
