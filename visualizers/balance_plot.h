// Plots of the balance lab: MaxVio curves (braille line plots, log or linear y), the quality vs
// balance trade-off (a scatter of labelled markers) and one-line sparklines. Pure functions from
// data to a Canvas; `dsv3 balance` prints them, the explorer's expert-load panel embeds them.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "visualizers/canvas.h"

namespace dsv3::viz {

struct PlotSeries {
  std::string label;
  std::vector<double> y;
  std::vector<double> x;  // empty: x = 0, 1, 2, ... (steps)
  Color color = kDefault;
};

struct PlotOptions {
  int width = 72;  // whole canvas, axis labels and legend included
  int height = 18;
  std::string title;
  std::string x_label = "step";
  bool log_y = false;
  double y_min = 0, y_max = 0;                         // both 0: from the data
  std::vector<std::pair<double, std::string>> hlines;  // dashed reference lines (value, label)
};

// A braille line plot (2x4 dots per cell). Long series are drawn as their min..max band per
// dot column, so the noise of MaxVio_batch stays visible.
Canvas line_plot(std::span<const PlotSeries> series, const PlotOptions& opt);

// MaxVio_batch curves on a log axis with the multinomial noise floor as a reference line
// (floor <= 0: none).
Canvas maxvio_plot(std::span<const PlotSeries> series, int width, int height, double floor = 0,
                   const std::string& title = "MaxVio_batch per step");

struct ScatterPoint {
  double x = 0, y = 0;
  std::string label;  // written right of the marker
  char32_t marker = U'●';
  Color color = kDefault;
};

// Labelled markers on linear axes (the trade-off: x = MaxVio_global, y = task loss).
Canvas scatter_plot(std::span<const ScatterPoint> points, int width, int height,
                    const std::string& title, const std::string& x_label,
                    const std::string& y_label);

// One row of ▁..█ for the last `width` values scaled to their maximum (MaxVio over time).
std::u32string sparkline(std::span<const double> values, int width);

// Palette shared by the balance pictures (xterm-256).
inline constexpr Color kSeriesColors[] = {75, 203, 114, 221, 141, 80, 209, 250};

}  // namespace dsv3::viz
