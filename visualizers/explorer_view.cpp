#include "visualizers/explorer_view.h"

#include <algorithm>
#include <numeric>

#include "reference/balance/metrics.h"
#include "visualizers/explorer_panels.h"

namespace dsv3::viz {

std::vector<std::vector<int64_t>> expert_counts(const ExplorerView& v, int upto) {
  std::vector<std::vector<int64_t>> counts(v.num_layers(),
                                           std::vector<int64_t>(v.num_experts(), 0));
  if (!v.traces) return counts;
  int last = std::min<int>(upto, static_cast<int>(v.traces->size()) - 1);
  for (int t = 0; t <= last; ++t)
    for (const model::LayerTrace& lt : (*v.traces)[t].layers)
      if (lt.moe && lt.layer < (int)counts.size())
        for (int e : lt.router.topk_idx)
          if (e >= 0 && e < (int)counts[lt.layer].size()) ++counts[lt.layer][e];
  return counts;
}

// MaxVio (eq. 4 of the Loss-Free Balancing paper): the one definition in reference/balance.
double max_vio(const std::vector<int64_t>& counts) {
  return balance::max_vio(counts);
}

std::vector<double> max_vio_series(const ExplorerView& v, int layer, int upto) {
  std::vector<int64_t> counts(v.num_experts(), 0);
  std::vector<double> out;
  for (int t = 0; t <= upto && t < (int)v.traces->size(); ++t) {
    const auto& layers = (*v.traces)[t].layers;
    if (layer < (int)layers.size())
      for (int e : layers[layer].router.topk_idx)
        if (e >= 0 && e < (int)counts.size()) ++counts[e];
    out.push_back(max_vio(counts));
  }
  return out;
}

std::string token_label(const ExplorerView& v, int position) {
  if (position < 0 || position >= (int)v.token_text.size()) return "?";
  return "'" + v.token_text[position] + "'";
}

}  // namespace dsv3::viz
