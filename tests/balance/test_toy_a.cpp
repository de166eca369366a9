// Toy A: the bias dynamics on a static skewed router (research notes §8). Asserts bands and
// scaling laws, not digits; runs are as small as the bands allow.
#include <gtest/gtest.h>

#include <cmath>

#include "reference/balance/metrics.h"
#include "reference/balance/toy_a.h"

namespace dsv3::balance {
namespace {

ToyAConfig toy(float gamma, int steps, int tokens = 4096) {
  ToyAConfig c;
  c.gamma = gamma;
  c.steps = steps;
  c.tokens_per_batch = tokens;
  c.heldout_tokens = 0;
  return c;
}

TEST(ToyA, ConvergesToTheNoiseFloorAtDefaultGamma) {
  ToyAConfig c = toy(1e-3f, 400);
  c.heldout_tokens = 65536;
  const ToyAResult r = run_toy_a(c);
  // The skewed router starts far out of balance (notes: ≈4.4; it depends on the skew draw).
  EXPECT_GT(r.maxvio_batch[0], 2.5);
  EXPECT_LT(r.maxvio_batch[0], 9.0);
  // Below 0.2 within roughly 200-400 steps.
  EXPECT_GE(r.first_below(0.2), 150);
  EXPECT_LE(r.first_below(0.2), 400);
  // Settles near 2.4·sqrt(N/(T·K)) = 0.122.
  const double floor = noise_floor(64, 4096, 6);
  EXPECT_NEAR(r.steady(100), floor, 0.3 * floor);
  // Held-out balance is better than any single batch (no multinomial noise of one batch).
  EXPECT_LT(r.maxvio_global.back(), 0.1);
  EXPECT_GT(max_vio(r.load_initial), 2.0);
}

TEST(ToyA, LargeGammaSettlesVisiblyHigher) {
  const ToyAResult fast = run_toy_a(toy(1e-2f, 150));
  EXPECT_LT(fast.first_below(1.0), 40);  // fast to converge ...
  // ... but a limit cycle of ±γ steps leaves it well above the 1e-3 floor (notes: ≈0.3).
  EXPECT_GT(fast.steady(75), 1.6 * noise_floor(64, 4096, 6));
}

TEST(ToyA, ConvergenceTimeScalesLikeOneOverGamma) {
  // Small batches are enough: the threshold 1.0 is far above their noise floor (0.25).
  const ToyAResult slow = run_toy_a(toy(1e-3f, 400, 1024));
  const ToyAResult fast = run_toy_a(toy(4e-3f, 80, 1024));
  ASSERT_GT(slow.first_below(1.0), 0);
  ASSERT_GT(fast.first_below(1.0), 0);
  const double ratio = static_cast<double>(slow.first_below(1.0)) / fast.first_below(1.0);
  EXPECT_GT(ratio, 3.0);
  EXPECT_LT(ratio, 5.0);
  // The floor scales like T^(-1/2): T = 1024 sits about twice as high as T = 4096.
  EXPECT_NEAR(slow.steady(100), noise_floor(64, 1024, 6), 0.25 * noise_floor(64, 1024, 6));
}

TEST(ToyA, CentredUpdateGivesTheSameRoutingWithoutDrift) {
  ToyAConfig c = toy(1e-3f, 150, 1024);
  const ToyAResult sign = run_toy_a(c);
  c.rule = UpdateRule::kCentred;
  const ToyAResult centred = run_toy_a(c);
  EXPECT_EQ(sign.maxvio_batch, centred.maxvio_batch);  // identical routing, step by step
  for (double m : centred.bias_mean) EXPECT_NEAR(m, 0.0, 1e-5);
  double spread = 0;
  for (int i = 0; i < c.experts; ++i)
    spread = std::max(spread, std::abs((sign.bias[i] - sign.bias_mean.back()) - centred.bias[i]));
  EXPECT_LT(spread, 1e-4);
  EXPECT_GT(std::abs(sign.bias_mean.back()), 1e-3);  // the plain sign rule does drift
}

TEST(ToyA, RawRuleAndGroupLimitedRoutingBalanceToo) {
  ToyAConfig raw = toy(1e-2f, 200, 1024);
  raw.rule = UpdateRule::kRaw;
  const ToyAResult r = run_toy_a(raw);
  EXPECT_LT(r.steady(50), 1.3 * noise_floor(64, 1024, 6));
  ToyAConfig grouped = toy(1e-3f, 350, 1024);
  grouped.top_k = 8;
  grouped.groups = 8;
  grouped.topk_groups = 4;
  const ToyAResult g = run_toy_a(grouped);
  EXPECT_GT(g.maxvio_batch[0], 2.0);
  EXPECT_LT(g.steady(50), 1.4 * noise_floor(64, 1024, 8));
}

}  // namespace
}  // namespace dsv3::balance
