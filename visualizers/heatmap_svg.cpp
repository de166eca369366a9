#include "visualizers/heatmap_svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>

#include "visualizers/explorer_style.h"
#include "visualizers/pipeline_timeline.h"

namespace dsv3::viz {

namespace {

struct Rgb {
  double r, g, b;
};

// The twelve stops of the terminal heat ramp, as RGB.
const std::array<Rgb, 12>& ramp_rgb() {
  static const std::array<Rgb, 12> stops = [] {
    std::array<Rgb, 12> s{};
    for (size_t i = 0; i < s.size(); ++i) {
      const std::string hex = xterm_to_hex(style::heat_color(i / double(s.size() - 1)));
      const long v = std::strtol(hex.c_str() + 1, nullptr, 16);
      s[i] = {double((v >> 16) & 255), double((v >> 8) & 255), double(v & 255)};
    }
    return s;
  }();
  return stops;
}

// A round step for about `n` ticks over `range`: 1, 2 or 5 times a power of ten.
double nice_step(double range, int n) {
  const double raw = range / std::max(1, n);
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * p) return m * p;
  return 10 * p;
}

std::string num(double v) {
  return fmt::format("{:.2f}", v);
}

}  // namespace

std::string heat_hex(double f) {
  const auto& s = ramp_rgb();
  f = std::isfinite(f) ? std::clamp(f, 0.0, 1.0) : 0.0;
  const double pos = f * (s.size() - 1);
  const size_t i = std::min(s.size() - 2, static_cast<size_t>(pos));
  const double t = pos - i;
  auto mix = [&](double a, double b) { return static_cast<int>(std::lround(a + (b - a) * t)); };
  return fmt::format("#{:02x}{:02x}{:02x}", mix(s[i].r, s[i + 1].r), mix(s[i].g, s[i + 1].g),
                     mix(s[i].b, s[i + 1].b));
}

std::string xml_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string draw_heatmap_svg(std::span<const HeatmapPanel> panels, const HeatmapSvgOptions& o) {
  size_t rows = 0, cols = 0;
  for (const HeatmapPanel& p : panels) {
    rows = std::max(rows, p.values.size());
    for (const auto& r : p.values) cols = std::max(cols, r.size());
  }
  rows = std::max<size_t>(rows, 1);
  cols = std::max<size_t>(cols, 1);
  const int group = o.column_group > 0 ? o.column_group : 0;
  const double cw = std::clamp(360.0 / cols, 3.0, 22.0), ch = std::clamp(220.0 / rows, 8.0, 26.0);
  const double group_gap = group > 0 && cw >= 6 ? 2.0 : 0.0;
  auto cx = [&](size_t c) { return c * cw + (group > 0 ? double(c / group) * group_gap : 0.0); };
  const double pw = cx(cols - 1) + cw, ph = rows * ch;
  const double left = 48, row_label_w = 26, gap = 28, bar_w = 14;
  const double top = (o.title.empty() ? 16.0 : 40.0) + 22;  // figure title, then panel titles
  const double panel_step = row_label_w + pw + gap;
  const double bar_x = left + panels.size() * panel_step;
  const double width = bar_x + bar_w + 70, height = top + ph + 48;
  const double span = o.vmax > o.vmin ? o.vmax - o.vmin : 1.0;
  auto frac = [&](double v) { return (v - o.vmin) / span; };

  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" "
      "viewBox=\"0 0 {0:.0f} {1:.0f}\" font-family=\"sans-serif\" font-size=\"11\">\n",
      std::ceil(width), std::ceil(height));
  out += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  if (!o.title.empty())
    out += fmt::format("<text x=\"{}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
                       num(left), xml_escape(o.title));
  // The y axis label, once, left of the first panel.
  out += fmt::format(
      "<text transform=\"translate(16,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
      num(top + ph / 2), xml_escape(o.y_label));

  for (size_t i = 0; i < panels.size(); ++i) {
    const HeatmapPanel& p = panels[i];
    const double x0 = left + i * panel_step + row_label_w, y0 = top;
    out += fmt::format("<g class=\"panel\" id=\"panel-{}\">\n", i);
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\" "
        "font-weight=\"bold\">{}</text>\n",
        num(x0 + pw / 2), num(y0 - 10), xml_escape(p.title));
    for (size_t r = 0; r < p.values.size(); ++r) {
      const double y = y0 + r * ch;
      if (r < p.row_labels.size())
        out += fmt::format(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"central\">{}</text>\n",
            num(x0 - 4), num(y + ch / 2), xml_escape(p.row_labels[r]));
      for (size_t c = 0; c < p.values[r].size(); ++c) {
        const double v = p.values[r][c];
        out += fmt::format(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{} {}, {} {}: "
            "{:.3f}</title></rect>\n",
            num(x0 + cx(c)), num(y), num(cw), num(ch), heat_hex(frac(v)), xml_escape(o.y_label),
            r < p.row_labels.size() ? xml_escape(p.row_labels[r]) : "", xml_escape(o.x_label), c,
            v);
      }
    }
    out += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444444\" "
        "stroke-width=\"0.6\"/>\n",
        num(x0), num(y0), num(pw), num(ph));
    // Column ticks: every group's first column, or a round step when there are no groups.
    const size_t every = group > 0 ? static_cast<size_t>(group)
                                   : static_cast<size_t>(std::max(1.0, nice_step(double(cols), 8)));
    for (size_t c = 0; c < cols; c += every)
      out +=
          fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"9\">{}</text>\n",
                      num(x0 + cx(c) + cw / 2), num(y0 + ph + 12), c);
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                       num(x0 + pw / 2), num(y0 + ph + 30), xml_escape(o.x_label));
    out += "</g>\n";
  }

  // The shared colour bar: the ramp as a vertical gradient, vmin at the bottom.
  out += "<defs><linearGradient id=\"heat\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n";
  for (int k = 0; k <= 11; ++k)
    out +=
        fmt::format("<stop offset=\"{:.4f}\" stop-color=\"{}\"/>\n", k / 11.0, heat_hex(k / 11.0));
  out += "</linearGradient></defs>\n";
  out += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"url(#heat)\" "
      "stroke=\"#444444\" stroke-width=\"0.6\"/>\n",
      num(bar_x), num(top), num(bar_w), num(ph));
  std::vector<double> ticks;
  const double step = nice_step(span, 5);
  for (double t = std::ceil(o.vmin / step) * step; t <= o.vmax + 1e-9 * span; t += step)
    ticks.push_back(t);
  for (double m : o.scale_marks)
    if (m >= o.vmin && m <= o.vmax && std::none_of(ticks.begin(), ticks.end(), [&](double t) {
          return std::fabs(t - m) < 0.25 * step;
        }))
      ticks.push_back(m);
  std::sort(ticks.begin(), ticks.end());
  for (double t : ticks) {
    const double y = top + ph * (1 - frac(t));
    out += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#444444\" "
        "stroke-width=\"0.6\"/>\n<text x=\"{3}\" y=\"{1}\" dominant-baseline=\"central\" "
        "font-size=\"9\">{4:g}</text>\n",
        num(bar_x + bar_w), num(y), num(bar_x + bar_w + 3), num(bar_x + bar_w + 5), t);
  }
  out += fmt::format(
      "<text transform=\"translate({},{}) rotate(90)\" text-anchor=\"middle\">{}</text>\n",
      num(bar_x + bar_w + 44), num(top + ph / 2), xml_escape(o.scale_label));
  out += "</svg>\n";
  return out;
}

}  // namespace dsv3::viz
