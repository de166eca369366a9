#include "visualizers/balance_load.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace dsv3::viz {

namespace {
constexpr Style kAxis{244, kDefault, kNone};
constexpr Color kOver = 203, kUnder = 75, kEven = 114, kBiasUp = 80, kBiasDown = 209;
constexpr char32_t kUp[] = U" ▁▂▃▄▅▆▇█";
}  // namespace

Canvas expert_load_bars(std::span<const double> load, std::span<const float> bias,
                        const LoadBarsOptions& opt) {
  Canvas c(std::max(opt.width, 16), std::max(opt.height, 5));
  const int n = static_cast<int>(load.size());
  const int top = opt.title.empty() ? 0 : 1;
  if (!opt.title.empty()) c.text(0, 0, opt.title, Style{kDefault, kDefault, kBold});
  if (n == 0) {
    c.text(0, top, "no experts", kAxis);
    return c;
  }
  const bool with_bias = opt.show_bias && static_cast<int>(bias.size()) == n;
  const int bars_h = c.height() - top - 2 - (with_bias ? 2 : 0);  // axis row + caption
  const int x0 = 5;                                               // "1/N " label margin
  const int plot_w = c.width() - x0;
  if (bars_h < 1 || plot_w < 2) return c;
  // Experts per column (buckets when N exceeds the width) and columns per expert.
  const int per_col = (n + plot_w - 1) / plot_w;
  const int cols = (n + per_col - 1) / per_col;
  const int cw = std::max(1, plot_w / cols);
  const int bar_w = cw >= 3 ? cw - 1 : cw;
  std::vector<double> colload(cols, 0.0), coldev(cols, 0.0);
  double bias_mean = 0;
  if (with_bias) {
    for (float b : bias) bias_mean += b;
    bias_mean /= n;
  }
  for (int k = 0; k < cols; ++k) {
    int m = 0;
    for (int e = k * per_col; e < std::min(n, (k + 1) * per_col); ++e, ++m) {
      colload[k] = std::max(colload[k], load[e]);  // the busiest expert of the bucket
      if (with_bias) coldev[k] += bias[e] - bias_mean;
    }
    if (m) coldev[k] /= m;
  }
  const double ideal = 1.0 / n;
  double mx = 2.0 * ideal;
  for (double l : load) mx = std::max(mx, l);
  // Bars, from the bottom row up, in eighths.
  const int base = top + bars_h;  // the axis row
  for (int k = 0; k < cols; ++k) {
    const double l = colload[k];
    const Color color = l > 1.1 * ideal ? kOver : (l < 0.9 * ideal ? kUnder : kEven);
    const int eighths = static_cast<int>(std::lround(l / mx * bars_h * 8));
    for (int r = 0; r < bars_h; ++r) {
      const int e8 = std::clamp(eighths - 8 * r, 0, 8);
      if (e8 == 0) continue;
      for (int i = 0; i < bar_w; ++i)
        c.put(x0 + k * cw + i, base - 1 - r, kUp[e8], Style{color, kDefault, kNone});
    }
  }
  // The balanced share 1/N as a dashed line where no bar covers it.
  const int ideal_row = base - 1 - std::min(bars_h - 1, static_cast<int>(ideal / mx * bars_h));
  for (int x = x0; x < x0 + cols * cw; ++x)
    if (c.at(x, ideal_row).glyph == U' ') c.put(x, ideal_row, U'┄', kAxis);
  c.text(0, ideal_row, "1/N", kAxis);
  // Axis with expert ids at a few places.
  for (int x = x0; x < x0 + cols * cw; ++x) c.put(x, base, U'─', kAxis);
  c.text(0, base, "exp", kAxis);
  for (int k = 0; k < cols; k += std::max(1, 8 / cw)) {
    const std::string id = fmt::format("{}", k * per_col);
    if (x0 + k * cw + static_cast<int>(id.size()) <= c.width())
      c.text(x0 + k * cw, base, id, kAxis);
  }
  int y = base + 1;
  if (with_bias) {
    double dmax = 0;
    for (double d : coldev) dmax = std::max(dmax, std::abs(d));
    c.text(0, y, "Δb", kAxis);  // b_i minus the mean bias (a combining bar would take a cell)
    for (int k = 0; k < cols; ++k) {
      const double f = dmax > 0 ? coldev[k] / dmax : 0;
      const int e8 = std::clamp(static_cast<int>(std::lround(std::abs(f) * 8)), 0, 8);
      for (int i = 0; i < bar_w; ++i) {
        if (f > 0 && e8 > 0) c.put(x0 + k * cw + i, y, kUp[e8], Style{kBiasUp, kDefault, kNone});
        if (f < 0 && e8 > 0)  // grows downward: ▔ (1/8), ▀ (1/2), █
          c.put(x0 + k * cw + i, y + 1, e8 >= 7 ? U'█' : (e8 >= 3 ? U'▀' : U'▔'),
                Style{kBiasDown, kDefault, kNone});
      }
    }
    y += 2;
  }
  double maxvio = 0;
  for (double l : load) maxvio = std::max(maxvio, (l - ideal) / ideal);
  std::string caption = fmt::format("MaxVio {:.3f}  ideal 1/N = {:.2f}%", maxvio, 100.0 * ideal);
  if (with_bias) {
    float lo = bias[0], hi = bias[0];
    for (float b : bias) lo = std::min(lo, b), hi = std::max(hi, b);
    caption +=
        fmt::format("  bias mean {:+.3f} (drift), range [{:+.3f}, {:+.3f}]", bias_mean, lo, hi);
  }
  if (per_col > 1) caption += fmt::format("  ({} experts per column, busiest shown)", per_col);
  c.text(0, std::min(y, c.height() - 1), caption, kAxis);
  return c;
}

}  // namespace dsv3::viz
