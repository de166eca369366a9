// Node-limited routing and expert-parallel placement (DeepSeek-V3 §2.1.2, §3.4).
//
// Training: each token reaches at most M nodes, "selected according to the sum of the highest
// K_r/M affinity scores of the experts distributed on each node"; the released code treats a
// node as an expert group and scores it by its top-2 biased scores (K_r/M = 8/4 = 2 for V3).
// Serving: experts live on devices; the heaviest ones get redundant copies so that per-device
// load evens out (prefill: 32 redundant experts, one extra slot on each of 32 GPUs).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "reference/model/config.h"
#include "reference/model/router.h"

namespace dsv3::balance {

// Experts on devices; devices_per_node consecutive devices form a node.
struct Placement {
  int n_experts = 0;
  int n_devices = 0;
  int devices_per_node = 1;
  std::vector<std::vector<int>> hosts;  // [N] devices holding a copy of expert i (primary first)

  int n_nodes() const { return n_devices / devices_per_node; }
  int node_of_device(int d) const { return d / devices_per_node; }
  int home_node(int expert) const { return node_of_device(hosts[expert][0]); }
  int copies() const;  // total expert copies (N + redundant)
};

// N/D consecutive experts per device (the layout of the released code's expert groups).
Placement contiguous_placement(int n_experts, int n_devices, int devices_per_node = 1);

// Node-limited routing for any placement with the same number of experts on every node: the
// experts are renumbered node by node and model::route runs with groups = nodes and
// topk_group = M, so node scores are the top-2 sums of biased scores. The result's topk_idx
// and groups_kept are in the original expert and node ids; per-expert vectors stay in the
// original order; group_scores are per node.
model::RouteResult route_node_limited(const model::Config& c, const Placement& p, int max_nodes,
                                      std::span<const float> logits, std::span<const float> bias);

// How many distinct nodes a token's experts live on (home copies).
int nodes_touched(const Placement& p, std::span<const int> experts);

// Per-device load for expert loads (token counts) [N]: an expert's tokens split evenly over
// its copies, as a serving router spreads them.
std::vector<double> device_loads(const Placement& p, std::span<const int64_t> expert_load);
std::vector<double> device_loads(const Placement& p, std::span<const double> expert_load);

// Per-device imbalance: max/mean − 1 (MaxVio over devices).
double device_imbalance(std::span<const double> device_load);

// Adds n_redundant copies of the heaviest experts (by load per copy), each on the least loaded
// device that has a free redundant slot and no copy of it yet; at most slots_per_device extra
// copies per device. Greedy, like DeepSeek's online redundant-expert selection.
Placement add_redundant_experts(const Placement& p, std::span<const int64_t> expert_load,
                                int n_redundant, int slots_per_device = 1);

}  // namespace dsv3::balance
