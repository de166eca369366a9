// The relative expert load of a text as a terminal heat map (the paper's Figure 9 in a
// terminal): one row per MoE layer, one column per routed expert, shaded by
// load / balanced load on a scale shared by every text shown, the row's maximum at its end.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "reference/model/config.h"
#include "visualizers/canvas.h"

namespace dsv3::viz {

struct ExpertLoadPanel {
  std::string title;                               // the text's label
  std::string subtitle;                            // e.g. its file and token count
  std::vector<int> layers;                         // model layer index of each row
  std::vector<std::vector<double>> relative_load;  // [row][expert], 1 = balanced
};

// The top of a colour scale shared by several panels: the largest relative load, at least 2 so
// that a balanced layer (all ones) sits mid-scale rather than at the top.
double expert_load_scale(std::span<const ExpertLoadPanel> panels);

// One panel, `width` columns wide when the experts fit (wider otherwise: every expert is shown).
// Cells carry the value twice: the heat colour and a shade glyph (· ░ ▒ ▓ █) that reads without
// colour. vmax is the shared scale's top; larger values saturate. The last line gives the mean
// over layers of the row maxima (the paper's Figure 9 summary).
Canvas draw_expert_heatmap(const model::Config& c, const ExpertLoadPanel& p, double vmax,
                           int width);

// The key below the panels: glyphs and colours against relative load, 0 .. vmax.
Canvas draw_expert_heatmap_legend(double vmax, int width);

}  // namespace dsv3::viz
