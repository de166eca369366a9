// Per-expert load bars with the routing biases beneath them: one column per expert (or per
// bucket of experts when they do not fit), bar height = share of the assignments, a dashed line
// at the balanced share 1/N, and the bias deviation from its mean (the part routing sees) as a
// diverging strip. Used by `dsv3 balance` and reusable by the explorer's expert-load panel.
#pragma once

#include <span>
#include <string>

#include "visualizers/canvas.h"

namespace dsv3::viz {

struct LoadBarsOptions {
  int width = 72;
  int height = 12;  // bars + axis + bias strip + caption
  std::string title;
  bool show_bias = true;
};

// load: per-expert fractions of assignments (sum 1) [N]; bias: b_i [N] or empty.
Canvas expert_load_bars(std::span<const double> load, std::span<const float> bias,
                        const LoadBarsOptions& opt);

}  // namespace dsv3::viz
