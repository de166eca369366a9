// Toy C: a learned router trained with the aux loss at several α and with loss-free biases.
// Asserts the directions of Loss-Free Balancing's Fig. 2 / Table 2, not magnitudes.
#include <gtest/gtest.h>

#include <cmath>

#include "reference/balance/toy_c.h"
#include "tests/support/sanitizer.h"

namespace dsv3::balance {
namespace {

TEST(ToyC, AuxLossTradesQualityForBalanceAndLossFreeBeatsIt) {
  ToyCConfig base;
  // Under the sanitizers: every method's code path at 1/10 of the length, structure only.
  base.steps = test_support::full_or_sanitized(3000, 300);
  base.eval_tokens = test_support::full_or_sanitized(8192, 1024);
  const auto points = run_tradeoff(base, {0.1, 1.0}, {1e-3}, 2);
  ASSERT_EQ(points.size(), 4u);
  const TradeoffPoint& none = points[0];
  const TradeoffPoint& weak = points[1];
  const TradeoffPoint& strong = points[2];
  const TradeoffPoint& free = points[3];
  ASSERT_EQ(strong.method, Balancing::kAuxLoss);
  ASSERT_EQ(free.method, Balancing::kLossFree);
  if (test_support::kUnderSanitizer) {  // the directions below need the full length
    for (const TradeoffPoint& p : points) {
      EXPECT_TRUE(std::isfinite(p.eval_mse));
      EXPECT_EQ(p.maxvio_batch.size(), static_cast<size_t>(base.steps));
    }
    return;
  }
  // Left alone, the router collapses onto a few experts (the Zipf clusters).
  EXPECT_GT(none.maxvio_global, 1.5);
  // Raising α lowers MaxVio and raises the task loss.
  EXPECT_LT(strong.maxvio_global, weak.maxvio_global);
  EXPECT_GT(strong.eval_mse, weak.eval_mse);
  // Loss-free at γ = 1e-3 is at least as balanced as the strong aux loss, at a lower task loss:
  // below the aux-loss curve.
  EXPECT_LT(free.maxvio_global, strong.maxvio_global);
  EXPECT_LT(free.eval_mse, strong.eval_mse);
}

TEST(ToyC, NoBalancingLeavesTheBiasAtZero) {
  ToyCConfig c;
  c.steps = 50;
  c.eval_tokens = 256;
  const ToyCResult r = run_toy_c(c);
  for (float b : r.bias) EXPECT_EQ(b, 0.0f);
  EXPECT_EQ(r.train_mse.size(), 50u);
  c.method = Balancing::kLossFree;
  const ToyCResult f = run_toy_c(c);
  float spread = 0;
  for (float b : f.bias) spread = std::max(spread, std::abs(b));
  EXPECT_GT(spread, 0.0f);
  EXPECT_LE(spread, 50 * c.gamma * 1.0001f);
}

}  // namespace
}  // namespace dsv3::balance
