// Node-limited routing and expert-parallel placement.
#include <gtest/gtest.h>

#include <vector>

#include "reference/balance/batch_router.h"
#include "reference/balance/placement.h"
#include "reference/balance/rng.h"

namespace dsv3::balance {
namespace {

std::vector<float> random_vec(Rng& rng, int n, double scale) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(scale * rng.normal());
  return v;
}

TEST(NodeLimited, ContiguousPlacementIsGroupLimitedRouting) {
  // 256 experts on 64 devices, 8 per node: V3's layout. Node = group of 32 consecutive experts.
  const Placement p = contiguous_placement(256, 64, 8);
  EXPECT_EQ(p.n_nodes(), 8);
  const model::Config flat = router_config(256, 8);
  const model::Config grouped = router_config(256, 8, 8, 4);
  Rng rng(1);
  for (int trial = 0; trial < 50; ++trial) {
    const auto z = random_vec(rng, 256, 1.0);
    const auto b = random_vec(rng, 256, 0.1);
    const model::RouteResult a = route_node_limited(flat, p, 4, z, b);
    const model::RouteResult r = model::route(grouped, z, b);
    EXPECT_EQ(a.topk_idx, r.topk_idx);
    EXPECT_EQ(a.topk_weight, r.topk_weight);
    EXPECT_EQ(a.groups_kept, r.groups_kept);
    EXPECT_LE(nodes_touched(p, a.topk_idx), 4);
  }
}

TEST(NodeLimited, AnyPlacementReachesAtMostMNodes) {
  // Experts dealt round-robin over 8 devices (1 device per node): expert e on node e % 8.
  Placement p = contiguous_placement(64, 8, 1);
  for (int e = 0; e < 64; ++e) p.hosts[e] = {e % 8};
  const model::Config c = router_config(64, 6);
  Rng rng(2);
  int touched_max = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const auto z = random_vec(rng, 64, 1.5);
    const model::RouteResult r = route_node_limited(c, p, 2, z, {});
    touched_max = std::max(touched_max, nodes_touched(p, r.topk_idx));
    for (int e : r.topk_idx) {  // only experts of the kept nodes
      EXPECT_TRUE(e % 8 == r.groups_kept[0] || e % 8 == r.groups_kept[1]);
    }
    // Scores come back in the original expert order.
    EXPECT_FLOAT_EQ(r.logits[5], z[5]);
  }
  EXPECT_EQ(touched_max, 2);
  // Without the node limit the same tokens spread over more nodes.
  const auto z = random_vec(rng, 64, 1.5);
  EXPECT_GT(nodes_touched(p, model::route(c, z, {}).topk_idx), 2);
}

TEST(Placement, DeviceLoadsAndRedundantExperts) {
  // 8 experts on 4 devices; expert 0 is hot.
  const Placement p = contiguous_placement(8, 4);
  const std::vector<int64_t> load = {100, 10, 10, 10, 10, 10, 10, 10};
  const std::vector<double> dl = device_loads(p, load);
  EXPECT_EQ(dl, (std::vector<double>{110, 20, 20, 20}));
  EXPECT_NEAR(device_imbalance(dl), 110.0 / 42.5 - 1.0, 1e-12);
  // One redundant copy of expert 0 goes to the least loaded device (the first of the ties).
  const Placement q = add_redundant_experts(p, load, 1);
  EXPECT_EQ(q.hosts[0], (std::vector<int>{0, 1}));
  EXPECT_EQ(q.copies(), 9);
  const std::vector<double> dq = device_loads(q, load);
  EXPECT_EQ(dq, (std::vector<double>{60, 70, 20, 20}));
  EXPECT_LT(device_imbalance(dq), device_imbalance(dl));
  // Four slots (one per device): the hot expert gets copies until its share is no longer the
  // heaviest; never two copies on one device.
  const Placement r = add_redundant_experts(p, load, 4);
  EXPECT_EQ(r.copies(), 12);
  for (const auto& h : r.hosts)
    for (size_t i = 0; i < h.size(); ++i)
      for (size_t j = i + 1; j < h.size(); ++j) EXPECT_NE(h[i], h[j]);
  EXPECT_LT(device_imbalance(device_loads(r, load)), device_imbalance(dq));
  EXPECT_THROW(add_redundant_experts(p, load, 5), std::invalid_argument);
}

}  // namespace
}  // namespace dsv3::balance
