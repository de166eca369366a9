#include "visualizers/balance_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace dsv3::viz {

namespace {

constexpr Style kAxis{244, kDefault, kNone};
constexpr Style kLabelStyle{250, kDefault, kNone};

// Braille dot bit of (dx, dy) in a 2x4 cell (Unicode 2800 block layout).
constexpr uint8_t kDot[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};

std::string tick_label(double v) {
  if (v == 0) return "0";
  const double a = std::abs(v);
  if (a >= 1e4 || a < 1e-3) return fmt::format("{:.0e}", v);
  if (a >= 100) return fmt::format("{:.0f}", v);
  if (a >= 10) return fmt::format("{:.1f}", v);
  return fmt::format("{:.3g}", v);
}

// Nice linear ticks covering [lo, hi].
std::vector<double> linear_ticks(double lo, double hi, int max_ticks) {
  std::vector<double> t;
  const double span = hi - lo;
  if (span <= 0) return {lo};
  const double raw = span / std::max(1, max_ticks - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step)
    t.push_back(std::abs(v) < 1e-12 * step ? 0.0 : v);
  return t;
}

std::vector<double> log_ticks(double lo, double hi) {  // lo, hi: log10 values
  std::vector<double> t;
  for (int d = static_cast<int>(std::floor(lo)); d <= static_cast<int>(std::ceil(hi)); ++d)
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * std::pow(10.0, d);
      const double lv = std::log10(v);
      if (lv >= lo - 1e-9 && lv <= hi + 1e-9) t.push_back(v);
    }
  if (t.size() > 6) {  // too dense: decades only
    std::vector<double> d;
    for (double v : t)
      if (std::abs(std::log10(v) - std::round(std::log10(v))) < 1e-9) d.push_back(v);
    if (d.size() >= 2) t = d;
  }
  return t;
}

}  // namespace

Canvas line_plot(std::span<const PlotSeries> series, const PlotOptions& opt) {
  Canvas c(std::max(opt.width, 20), std::max(opt.height, 6));
  const int top = opt.title.empty() ? 0 : 1;
  const int legend_rows =
      series.size() > 1 || (series.size() == 1 && !series[0].label.empty()) ? 1 : 0;
  const int plot_h = c.height() - top - 2 - legend_rows;  // x axis line + x labels
  const bool log_y = opt.log_y;
  auto ty = [&](double v) { return log_y ? std::log10(std::max(v, 1e-12)) : v; };
  // Data range.
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin;
  double ymin = xmin, ymax = -xmin;
  for (const PlotSeries& s : series)
    for (size_t i = 0; i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (log_y && s.y[i] <= 0)) continue;
      const double x = s.x.empty() ? static_cast<double>(i) : s.x[i];
      xmin = std::min(xmin, x);
      xmax = std::max(xmax, x);
      ymin = std::min(ymin, ty(s.y[i]));
      ymax = std::max(ymax, ty(s.y[i]));
    }
  for (const auto& [v, l] : opt.hlines)
    if (!log_y || v > 0) {
      ymin = std::min(ymin, ty(v));
      ymax = std::max(ymax, ty(v));
    }
  if (opt.y_min != 0 || opt.y_max != 0) {
    ymin = ty(opt.y_min);
    ymax = ty(opt.y_max);
  }
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1;
  if (!std::isfinite(ymin)) ymin = 0, ymax = 1;
  if (xmax <= xmin) xmax = xmin + 1;
  if (ymax <= ymin) ymax = ymin + (log_y ? 1 : std::max(1.0, std::abs(ymin)));
  if (!log_y && opt.y_min == 0 && opt.y_max == 0) {
    const double pad = 0.05 * (ymax - ymin);
    ymax += pad;
    if (ymin > 0 && ymin - pad < 0)
      ymin = 0;
    else
      ymin -= pad;
  }
  // Y tick labels decide the left margin.
  std::vector<double> ticks =
      log_y ? log_ticks(ymin, ymax) : linear_ticks(ymin, ymax, std::max(2, plot_h / 3 + 1));
  int label_w = 1;
  for (double t : ticks) label_w = std::max(label_w, static_cast<int>(tick_label(t).size()));
  const int x0 = label_w + 1;  // axis column
  const int plot_w = c.width() - x0 - 1;
  if (plot_h < 2 || plot_w < 4) return c;
  const int dots_w = plot_w * 2, dots_h = plot_h * 4;
  auto dot_y = [&](double v) {  // 0 = top
    const double f = (ty(v) - ymin) / (ymax - ymin);
    return std::clamp(static_cast<int>(std::lround((1.0 - f) * (dots_h - 1))), 0, dots_h - 1);
  };
  auto dot_x = [&](double x) {
    const double f = (x - xmin) / (xmax - xmin);
    return std::clamp(static_cast<int>(std::lround(f * (dots_w - 1))), 0, dots_w - 1);
  };

  if (!opt.title.empty()) c.text(0, 0, opt.title, Style{kDefault, kDefault, kBold});
  // Axes and ticks.
  for (int y = 0; y < plot_h; ++y) c.put(x0, top + y, U'│', kAxis);
  c.put(x0, top + plot_h, U'└', kAxis);
  for (int x = 1; x <= plot_w; ++x) c.put(x0 + x, top + plot_h, U'─', kAxis);
  for (double t : ticks) {
    const int row = top + dot_y(t) / 4;
    const std::string l = tick_label(t);
    c.text(x0 - static_cast<int>(l.size()), row, l, kLabelStyle);
    c.put(x0, row, U'┤', kAxis);
  }
  // X labels: start, middle, end, and the axis name.
  const std::string xl0 = tick_label(xmin), xl1 = tick_label(xmax);
  c.text(x0, top + plot_h + 1, xl0, kLabelStyle);
  c.text(x0 + plot_w - static_cast<int>(xl1.size()) + 1, top + plot_h + 1, xl1, kLabelStyle);
  if (!opt.x_label.empty())
    c.text(x0 + (plot_w - static_cast<int>(opt.x_label.size())) / 2, top + plot_h + 1, opt.x_label,
           kAxis);

  // Braille layer: bits per cell, colour of the last series touching it.
  std::vector<uint8_t> bits(static_cast<size_t>(plot_w) * plot_h, 0);
  std::vector<Color> col(bits.size(), kDefault);
  auto set_dot = [&](int dx, int dy, Color color) {
    const size_t cell = static_cast<size_t>(dy / 4) * plot_w + dx / 2;
    bits[cell] |= kDot[dy % 4][dx % 2];
    col[cell] = color;
  };
  // Reference lines: every other dot.
  for (const auto& [v, l] : opt.hlines) {
    if (log_y && v <= 0) continue;
    const int dy = dot_y(v);
    for (int dx = 0; dx < dots_w; dx += 2) set_dot(dx, dy, 244);
  }
  for (size_t si = 0; si < series.size(); ++si) {
    const PlotSeries& s = series[si];
    const Color color =
        s.color != kDefault ? s.color : kSeriesColors[si % std::size(kSeriesColors)];
    // Per dot column: min, max, first and last dot row.
    std::vector<int> lo(dots_w, INT32_MAX), hi(dots_w, -1), first(dots_w, -1), last(dots_w, -1);
    for (size_t i = 0; i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (log_y && s.y[i] <= 0)) continue;
      const int dx = dot_x(s.x.empty() ? static_cast<double>(i) : s.x[i]);
      const int dy = dot_y(s.y[i]);
      lo[dx] = std::min(lo[dx], dy);
      hi[dx] = std::max(hi[dx], dy);
      if (first[dx] < 0) first[dx] = dy;
      last[dx] = dy;
    }
    int prev = -1, prev_x = -1;
    for (int dx = 0; dx < dots_w; ++dx) {
      if (hi[dx] < 0) continue;
      int a = lo[dx], b = hi[dx];
      if (prev >= 0 && dx == prev_x + 1) {  // join to the previous column
        a = std::min(a, prev);
        b = std::max(b, prev);
      } else if (prev >= 0) {  // sparse data: a straight segment across the empty columns
        int y0 = prev;
        for (int cx = prev_x + 1; cx < dx; ++cx) {
          const int y1 = static_cast<int>(std::lround(prev + static_cast<double>(first[dx] - prev) *
                                                                 (cx - prev_x) / (dx - prev_x)));
          for (int dy = std::min(y0, y1); dy <= std::max(y0, y1); ++dy) set_dot(cx, dy, color);
          y0 = y1;
        }
        a = std::min(a, y0);
        b = std::max(b, y0);
      }
      for (int dy = a; dy <= b; ++dy) set_dot(dx, dy, color);
      prev = last[dx];
      prev_x = dx;
    }
  }
  for (int y = 0; y < plot_h; ++y)
    for (int x = 0; x < plot_w; ++x) {
      const size_t cell = static_cast<size_t>(y) * plot_w + x;
      if (bits[cell])
        c.put(x0 + 1 + x, top + y, static_cast<char32_t>(0x2800 + bits[cell]),
              Style{col[cell], kDefault, kNone});
    }
  // Reference-line labels on top of the dots.
  for (const auto& [v, l] : opt.hlines)
    if (!l.empty() && (!log_y || v > 0))
      c.text(x0 + plot_w + 1 - display_width(l), top + dot_y(v) / 4, l, kAxis);
  // Legend.
  if (legend_rows) {
    int x = x0 + 1;
    for (size_t si = 0; si < series.size(); ++si) {
      const Color color = series[si].color != kDefault
                              ? series[si].color
                              : kSeriesColors[si % std::size(kSeriesColors)];
      x = c.text(x, c.height() - 1, "━━ ", Style{color, kDefault, kBold});
      x = c.text(x, c.height() - 1, series[si].label, kLabelStyle) + 2;
    }
  }
  return c;
}

Canvas maxvio_plot(std::span<const PlotSeries> series, int width, int height, double floor,
                   const std::string& title) {
  PlotOptions o;
  o.width = width;
  o.height = height;
  o.title = title;
  o.log_y = true;
  if (floor > 0) o.hlines.push_back({floor, "noise floor"});
  return line_plot(series, o);
}

Canvas scatter_plot(std::span<const ScatterPoint> points, int width, int height,
                    const std::string& title, const std::string& x_label,
                    const std::string& y_label) {
  Canvas c(std::max(width, 24), std::max(height, 8));
  const int top = title.empty() ? 0 : 1;
  if (!title.empty()) c.text(0, 0, title, Style{kDefault, kDefault, kBold});
  double xmin = 0, xmax = 0, ymin = 0, ymax = 0;
  bool first = true;
  for (const ScatterPoint& p : points) {
    if (!std::isfinite(p.x) || !std::isfinite(p.y)) continue;
    if (first) xmin = xmax = p.x, ymin = ymax = p.y, first = false;
    xmin = std::min(xmin, p.x), xmax = std::max(xmax, p.x);
    ymin = std::min(ymin, p.y), ymax = std::max(ymax, p.y);
  }
  xmin = std::min(xmin, 0.0);
  if (xmax <= xmin) xmax = xmin + 1;
  const double ypad = ymax > ymin ? 0.08 * (ymax - ymin) : 0.5 * std::max(1e-9, std::abs(ymax));
  ymin -= ypad, ymax += ypad;
  const int plot_h = c.height() - top - 3;  // axis, x labels, y label line
  std::vector<double> yt = linear_ticks(ymin, ymax, std::max(2, plot_h / 3 + 1));
  int label_w = 1;
  for (double t : yt) label_w = std::max(label_w, static_cast<int>(tick_label(t).size()));
  const int x0 = label_w + 1, plot_w = c.width() - x0 - 2;
  auto row = [&](double y) {
    return top +
           std::clamp(static_cast<int>(std::lround((ymax - y) / (ymax - ymin) * (plot_h - 1))), 0,
                      plot_h - 1);
  };
  auto colx = [&](double x) {
    return x0 + 1 +
           std::clamp(static_cast<int>(std::lround((x - xmin) / (xmax - xmin) * (plot_w - 1))), 0,
                      plot_w - 1);
  };
  for (int y = 0; y < plot_h; ++y) c.put(x0, top + y, U'│', kAxis);
  c.put(x0, top + plot_h, U'└', kAxis);
  for (int x = 1; x <= plot_w; ++x) c.put(x0 + x, top + plot_h, U'─', kAxis);
  for (double t : yt) {
    const std::string l = tick_label(t);
    c.text(x0 - static_cast<int>(l.size()), row(t), l, kLabelStyle);
    c.put(x0, row(t), U'┤', kAxis);
  }
  for (double t : linear_ticks(xmin, xmax, std::max(2, plot_w / 12))) {
    const std::string l = tick_label(t);
    const int x = colx(t);
    c.put(x, top + plot_h, U'┬', kAxis);
    c.text(std::min(x, c.width() - static_cast<int>(l.size())), top + plot_h + 1, l, kLabelStyle);
  }
  c.text(x0 + 1, c.height() - 1, fmt::format("x: {}   y: {}", x_label, y_label), kAxis);
  for (const ScatterPoint& p : points) {
    if (!std::isfinite(p.x) || !std::isfinite(p.y)) continue;
    const int x = colx(p.x), y = row(p.y);
    c.put(x, y, p.marker, Style{p.color, kDefault, kBold});
    if (!p.label.empty()) {
      const int lx = x + 2 + static_cast<int>(p.label.size()) <= c.width()
                         ? x + 2
                         : x - 1 - static_cast<int>(p.label.size());
      c.text(lx, y, p.label, Style{p.color, kDefault, kNone});
      c.put(x, y, p.marker, Style{p.color, kDefault, kBold});
    }
  }
  return c;
}

std::u32string sparkline(std::span<const double> values, int width) {
  static constexpr char32_t kBlocks[] = U"▁▂▃▄▅▆▇█";
  std::u32string out;
  if (values.empty() || width <= 0) return out;
  const size_t first = values.size() > static_cast<size_t>(width) ? values.size() - width : 0;
  double mx = 0;
  for (size_t i = first; i < values.size(); ++i) mx = std::max(mx, values[i]);
  for (size_t i = first; i < values.size(); ++i) {
    const double f = mx > 0 ? std::clamp(values[i] / mx, 0.0, 1.0) : 0.0;
    out.push_back(kBlocks[std::clamp(static_cast<int>(std::lround(f * 7)), 0, 7)]);
  }
  return out;
}

}  // namespace dsv3::viz
