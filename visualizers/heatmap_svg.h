// Heat maps side by side as one self-contained SVG picture, in the style of Figure 9 of the
// DeepSeek-V3 report (relative expert load per domain): one panel per data set, rows x columns
// of cells coloured on one shared scale, a colour bar, labelled axes and a title per panel.
// The output depends only on the input (fixed number formats, no time stamps).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dsv3::viz {

struct HeatmapPanel {
  std::string title;                        // above the panel, e.g. the text's label
  std::vector<std::string> row_labels;      // one per row, e.g. "5" for layer 5
  std::vector<std::vector<double>> values;  // [row][column]
};

struct HeatmapSvgOptions {
  std::string title;                                 // over the whole figure (may be empty)
  std::string x_label = "Expert";                    // under every panel
  std::string y_label = "Layer";                     // left of the first panel
  std::string scale_label = "Relative expert load";  // beside the colour bar
  double vmin = 0, vmax = 1;                         // the shared colour scale
  std::vector<double> scale_marks;                   // extra colour-bar ticks, e.g. 1 = balanced
  int column_group = 0;  // > 0: a tick and a thin gap every this many columns (expert groups)
};

// The heat ramp of the terminal pictures (explorer_style's heat_color: dark blue .. yellow),
// interpolated continuously: f in [0, 1] -> "#rrggbb".
std::string heat_hex(double f);

// Escapes &, <, >, " and ' for SVG text and attributes.
std::string xml_escape(std::string_view s);

std::string draw_heatmap_svg(std::span<const HeatmapPanel> panels, const HeatmapSvgOptions& o);

}  // namespace dsv3::viz
