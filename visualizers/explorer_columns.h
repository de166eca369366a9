// Column geometry of a per-expert table (routing grid, load bars): a label column, then one
// cell per expert with a one-column gap between expert groups.
#pragma once

#include <algorithm>

#include "reference/model/config.h"

namespace dsv3::viz {

struct ExpertColumns {
  int label_w = 9;  // row labels
  int experts = 0;  // N_r
  int groups = 1;   // n_group
  int per_group = 1;
  int cw = 1;     // cells per expert
  int shown = 0;  // experts that fit
  int x(int e) const { return label_w + e * cw + e / per_group; }

  static ExpertColumns fit(const model::Config& c, int w, int label_w = 9) {
    ExpertColumns k;
    k.label_w = label_w;
    k.experts = static_cast<int>(c.n_routed_experts);
    k.groups = std::max<int>(1, static_cast<int>(c.n_group));
    k.per_group = std::max(1, k.experts / k.groups);
    int avail = w - k.label_w - (k.groups - 1);
    k.cw = std::clamp(avail / std::max(1, k.experts), 1, 6);
    k.shown = k.experts;
    while (k.shown > 0 && k.x(k.shown - 1) + k.cw > w) --k.shown;
    return k;
  }
};

}  // namespace dsv3::viz
