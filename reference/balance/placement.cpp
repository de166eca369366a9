#include "reference/balance/placement.h"

#include <algorithm>
#include <stdexcept>

#include "reference/balance/metrics.h"

namespace dsv3::balance {

int Placement::copies() const {
  int c = 0;
  for (const auto& h : hosts) c += static_cast<int>(h.size());
  return c;
}

Placement contiguous_placement(int n_experts, int n_devices, int devices_per_node) {
  if (n_experts <= 0 || n_devices <= 0 || n_experts % n_devices)
    throw std::invalid_argument("placement: devices must divide the number of experts");
  if (devices_per_node <= 0 || n_devices % devices_per_node)
    throw std::invalid_argument("placement: devices per node must divide the number of devices");
  Placement p;
  p.n_experts = n_experts;
  p.n_devices = n_devices;
  p.devices_per_node = devices_per_node;
  p.hosts.resize(n_experts);
  const int per = n_experts / n_devices;
  for (int e = 0; e < n_experts; ++e) p.hosts[e] = {e / per};
  return p;
}

model::RouteResult route_node_limited(const model::Config& c, const Placement& p, int max_nodes,
                                      std::span<const float> logits, std::span<const float> bias) {
  const int n = p.n_experts;
  const int nodes = p.n_nodes();
  if (static_cast<int>(c.n_routed_experts) != n || static_cast<int>(logits.size()) != n)
    throw std::invalid_argument("route_node_limited: config, placement and logits disagree");
  // Renumber experts node by node (stable within a node).
  std::vector<std::vector<int>> members(nodes);
  for (int e = 0; e < n; ++e) members[p.home_node(e)].push_back(e);
  const size_t per = members[0].size();
  for (const auto& m : members)
    if (m.size() != per)
      throw std::invalid_argument("route_node_limited: unequal experts per node");
  std::vector<int> order;  // new id -> expert
  for (const auto& m : members) order.insert(order.end(), m.begin(), m.end());
  std::vector<float> z(n), b(bias.empty() ? 0 : n);
  for (int j = 0; j < n; ++j) {
    z[j] = logits[order[j]];
    if (!bias.empty()) b[j] = bias[order[j]];
  }
  model::Config nc = c;
  nc.n_group = nodes;
  nc.topk_group = max_nodes;
  nc.topk_method = model::TopkMethod::kNoauxTc;
  model::RouteResult r = model::route(nc, z, b);
  // Back to the original ids.
  model::RouteResult o = r;
  for (int j = 0; j < n; ++j) {
    o.logits[order[j]] = r.logits[j];
    o.scores[order[j]] = r.scores[j];
    o.biased[order[j]] = r.biased[j];
  }
  for (int& e : o.topk_idx) e = order[e];
  return o;
}

int nodes_touched(const Placement& p, std::span<const int> experts) {
  std::vector<char> seen(p.n_nodes(), 0);
  int n = 0;
  for (int e : experts) {
    char& s = seen[p.home_node(e)];
    if (!s) ++n;
    s = 1;
  }
  return n;
}

std::vector<double> device_loads(const Placement& p, std::span<const double> expert_load) {
  if (static_cast<int>(expert_load.size()) != p.n_experts)
    throw std::invalid_argument("device_loads: one load per expert expected");
  std::vector<double> d(p.n_devices, 0.0);
  for (int e = 0; e < p.n_experts; ++e) {
    const double share = expert_load[e] / static_cast<double>(p.hosts[e].size());
    for (int dev : p.hosts[e]) d[dev] += share;
  }
  return d;
}

std::vector<double> device_loads(const Placement& p, std::span<const int64_t> expert_load) {
  std::vector<double> l(expert_load.begin(), expert_load.end());
  return device_loads(p, l);
}

double device_imbalance(std::span<const double> device_load) {
  return max_vio(device_load);  // max/mean - 1 over devices: MaxVio of the device loads
}

Placement add_redundant_experts(const Placement& p, std::span<const int64_t> expert_load,
                                int n_redundant, int slots_per_device) {
  if (static_cast<int>(expert_load.size()) != p.n_experts)
    throw std::invalid_argument("add_redundant_experts: one load per expert expected");
  if (n_redundant < 0 || slots_per_device < 0 ||
      n_redundant > static_cast<int64_t>(slots_per_device) * p.n_devices)
    throw std::invalid_argument("add_redundant_experts: more redundant experts than free slots");
  Placement q = p;
  std::vector<int> used(p.n_devices, 0);
  for (int r = 0; r < n_redundant; ++r) {
    std::vector<double> dl = device_loads(q, expert_load);
    // The expert with the heaviest load per copy.
    int best = -1;
    double best_share = -1;
    for (int e = 0; e < q.n_experts; ++e) {
      const double share = static_cast<double>(expert_load[e]) / q.hosts[e].size();
      bool placeable = false;
      for (int d = 0; d < q.n_devices && !placeable; ++d)
        placeable = used[d] < slots_per_device &&
                    std::find(q.hosts[e].begin(), q.hosts[e].end(), d) == q.hosts[e].end();
      if (placeable && share > best_share) {
        best_share = share;
        best = e;
      }
    }
    if (best < 0) break;
    int dev = -1;
    for (int d = 0; d < q.n_devices; ++d) {
      if (used[d] >= slots_per_device) continue;
      if (std::find(q.hosts[best].begin(), q.hosts[best].end(), d) != q.hosts[best].end()) continue;
      if (dev < 0 || dl[d] < dl[dev]) dev = d;
    }
    q.hosts[best].push_back(dev);
    ++used[dev];
  }
  return q;
}

}  // namespace dsv3::balance
