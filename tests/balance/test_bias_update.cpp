// The bias update by hand, its precision rules and the bias-only-in-selection invariants.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "reference/balance/batch_router.h"
#include "reference/balance/bias_update.h"
#include "reference/balance/metrics.h"
#include "reference/balance/rng.h"
#include "reference/model/router.h"

namespace dsv3::balance {
namespace {

TEST(BiasUpdate, OneStepByHand) {
  // counts (3, 1, 0, 4): c̄ = 2, e = c̄ − c = (−1, +1, +2, −2) → b += γ·(−1, +1, +1, −1).
  const std::vector<int64_t> counts = {3, 1, 0, 4};
  std::vector<float> bias = {0.5f, 0.5f, 0.5f, 0.5f};
  update_bias(bias, counts, 0.25f, UpdateRule::kSign);
  EXPECT_EQ(bias, (std::vector<float>{0.25f, 0.75f, 0.75f, 0.25f}));
  EXPECT_DOUBLE_EQ(max_vio(counts), 1.0);  // (4 − 2)/2
}

TEST(BiasUpdate, EqualCountsLeaveBiasUnchanged) {
  const std::vector<int64_t> counts = {5, 5, 5, 5};
  for (UpdateRule rule : {UpdateRule::kSign, UpdateRule::kCentred, UpdateRule::kRaw}) {
    std::vector<float> bias = {0.1f, -0.2f, 0.3f, 2.0f};
    const std::vector<float> before = bias;
    update_bias(bias, counts, 1e-3f, rule);
    EXPECT_EQ(bias, before) << rule_name(rule);
  }
  EXPECT_DOUBLE_EQ(max_vio(counts), 0.0);
}

TEST(BiasUpdate, SignOfZeroIsZeroWithNonIntegerMean) {
  // c̄ = 7/3: no expert sits exactly at the mean, every one moves.
  const std::vector<int64_t> counts = {2, 2, 3};
  const std::vector<float> d = bias_delta(counts, 1.0f, UpdateRule::kSign);
  EXPECT_EQ(d, (std::vector<float>{1.0f, 1.0f, -1.0f}));
  // One expert exactly at the mean stays put.
  EXPECT_EQ(bias_delta(std::vector<int64_t>{1, 2, 3}, 1.0f, UpdateRule::kSign),
            (std::vector<float>{1.0f, 0.0f, -1.0f}));
}

TEST(BiasUpdate, CentredHasZeroMeanAndSameSpread) {
  const std::vector<int64_t> counts = {9, 1, 1, 1};  // one over, three under: drift +γ/2
  const auto s = bias_delta(counts, 1e-3f, UpdateRule::kSign);
  const auto c = bias_delta(counts, 1e-3f, UpdateRule::kCentred);
  double ms = 0, mc = 0;
  for (int i = 0; i < 4; ++i) {
    ms += s[i] / 4.0;
    mc += c[i] / 4.0;
  }
  EXPECT_NEAR(ms, 0.5e-3, 1e-9);
  EXPECT_NEAR(mc, 0.0, 1e-9);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(s[i] - c[i], ms, 1e-9);
}

TEST(BiasUpdate, RawIsTheNormalisedError) {
  const std::vector<int64_t> counts = {3, 1, 0, 4};  // (c̄ − c)/c̄ = (−0.5, 0.5, 1, −1)
  const auto d = bias_delta(counts, 0.1f, UpdateRule::kRaw);
  EXPECT_FLOAT_EQ(d[0], -0.05f);
  EXPECT_FLOAT_EQ(d[1], 0.05f);
  EXPECT_FLOAT_EQ(d[2], 0.1f);
  EXPECT_FLOAT_EQ(d[3], -0.1f);
}

TEST(BiasUpdate, RuleNamesRoundTrip) {
  for (UpdateRule r : {UpdateRule::kSign, UpdateRule::kCentred, UpdateRule::kRaw})
    EXPECT_EQ(parse_rule(rule_name(r)), r);
  EXPECT_THROW(parse_rule("bogus"), std::invalid_argument);
}

TEST(BiasUpdate, Float32ResolvesSmallStepsOnALargeBias) {
  // Pitfall 2: at |b| ≈ 5 bf16 spacing is 2^-5, so a 1e-3 step would vanish; float32 keeps it.
  std::vector<float> bias = {5.0f, 5.0f};
  for (int i = 0; i < 100; ++i)
    update_bias(bias, std::vector<int64_t>{1, 0}, 1e-3f, UpdateRule::kSign);
  EXPECT_NEAR(bias[0], 4.9, 1e-4);
  EXPECT_NEAR(bias[1], 5.1, 1e-4);
}

TEST(BiasUpdate, LargeCountsKeepExactSigns) {
  // Pitfall 3: 40,961 vs a mean of 40,960 must still read as overloaded.
  const std::vector<int64_t> counts = {40961, 40959, 40960, 40960};
  EXPECT_EQ(bias_delta(counts, 1.0f, UpdateRule::kSign), (std::vector<float>{-1, 1, 0, 0}));
}

TEST(BiasBalancer, CountsStepsAndRestarts) {
  BiasBalancer b(4, 0.25f);
  std::vector<float> bias(4, 0.0f);
  for (auto e : std::vector<std::vector<int>>{{0, 3}, {0, 3}, {1, 3}, {0, 3}}) b.observe(e);
  EXPECT_EQ(b.counts(), (std::vector<int64_t>{3, 1, 0, 4}));
  EXPECT_EQ(b.tokens(), 4);
  const StepStats s = b.step(bias);
  EXPECT_DOUBLE_EQ(s.maxvio, 1.0);
  EXPECT_EQ(s.overloaded, 2);
  EXPECT_EQ(s.underloaded, 2);
  EXPECT_EQ(bias, (std::vector<float>{-0.25f, 0.25f, 0.25f, -0.25f}));
  EXPECT_EQ(b.counts(), (std::vector<int64_t>{0, 0, 0, 0}));
  // Disabled: statistics still recorded, bias untouched.
  b.set_enabled(false);
  const int ids[] = {0, 1, 0, 1};
  b.observe_batch(ids, 2);
  EXPECT_EQ(b.tokens(), 2);
  b.step(bias);
  EXPECT_EQ(bias, (std::vector<float>{-0.25f, 0.25f, 0.25f, -0.25f}));
  EXPECT_EQ(b.history().size(), 2u);
  EXPECT_DOUBLE_EQ(b.history()[1].maxvio, 1.0);
}

TEST(BiasBalancer, RejectsBadExpertIds) {
  BiasBalancer b(4);
  EXPECT_THROW(b.observe(std::vector<int>{4}), std::out_of_range);
  std::vector<float> wrong(3);
  EXPECT_THROW(b.step(wrong), std::invalid_argument);
}

std::vector<float> random_vec(Rng& rng, int n, double scale) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(scale * rng.normal());
  return v;
}

TEST(Invariants, BiasNeverEntersTheGateWeights) {
  const model::Config c = router_config(16, 4, 4, 2, 2.5);
  Rng rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const auto z = random_vec(rng, 16, 1.0);
    const auto b = random_vec(rng, 16, 0.3);
    const model::RouteResult r = model::route(c, z, b);
    float sum = 0, sum_biased = 0;
    for (int e : r.topk_idx) {
      sum += r.scores[e];
      sum_biased += r.biased[e];
    }
    for (int j = 0; j < 4; ++j) {
      const int e = r.topk_idx[j];
      EXPECT_FLOAT_EQ(r.topk_weight[j], r.scores[e] / sum * 2.5f);  // eq. (13): unbiased s
      // The vLLM #12002 bug would give these: they must differ.
      EXPECT_GT(std::abs(r.topk_weight[j] - r.biased[e] / sum_biased * 2.5f), 1e-6f);
    }
  }
}

TEST(Invariants, CommonBiasOffsetChangesNoSelection) {
  Rng rng(11);
  for (auto [groups, kept] : std::vector<std::pair<int, int>>{{1, 1}, {8, 4}, {4, 2}}) {
    const model::Config c = router_config(64, 8, groups, kept);
    for (int trial = 0; trial < 100; ++trial) {
      const auto z = random_vec(rng, 64, 1.0);
      const auto b = random_vec(rng, 64, 0.2);
      auto shifted = b;
      for (float& x : shifted) x += 0.5f;  // exactly representable: no rounding of s + b
      EXPECT_EQ(model::route(c, z, b).topk_idx, model::route(c, z, shifted).topk_idx)
          << groups << " groups";
    }
  }
}

TEST(BatchRouter, MatchesTheReferenceRouter) {
  Rng rng(3);
  struct Case {
    int n, k, groups, kept;
    bool bias;
    float fill;
  };
  const float inf = std::numeric_limits<float>::infinity();
  for (const Case& cs : std::vector<Case>{{64, 6, 1, 1, true, -inf},
                                          {256, 8, 8, 4, true, -inf},
                                          {16, 4, 4, 2, true, 0.0f},
                                          {32, 4, 4, 2, false, -inf}}) {
    const model::Config c = router_config(cs.n, cs.k, cs.groups, cs.kept, 2.5);
    Mat z(300, cs.n);
    for (Eigen::Index i = 0; i < z.size(); ++i) z.data()[i] = static_cast<float>(rng.normal());
    for (int t = 0; t < 20; ++t) z(t, t % cs.n) = z(t, (t + 1) % cs.n);  // exact ties
    std::vector<float> b =
        cs.bias ? random_vec(rng, cs.n, cs.fill == 0 ? 2.0 : 0.3) : std::vector<float>{};
    if (cs.fill == 0)
      for (float& x : b) x = -std::abs(x) - 1.5f;  // all biased scores negative: 0-fill matters
    model::RouterOptions opt;
    opt.masked_fill = cs.fill;
    BatchRouting br;
    route_batch(c, z, b, br, opt);
    for (int t = 0; t < z.rows(); ++t) {
      std::vector<float> row(z.row(t).data(), z.row(t).data() + cs.n);
      const model::RouteResult r = model::route(c, row, b, opt);
      ASSERT_EQ(std::vector<int>(br.experts(t), br.experts(t) + cs.k), r.topk_idx) << "token " << t;
      for (int j = 0; j < cs.k; ++j) EXPECT_EQ(br.topk_weight[t * cs.k + j], r.topk_weight[j]);
    }
  }
}

TEST(Metrics, LoadFractionsAndDrift) {
  const std::vector<int64_t> counts = {1, 3};
  EXPECT_EQ(load_fractions(counts), (std::vector<double>{0.25, 0.75}));
  const BiasDrift d = bias_drift(std::vector<float>{1.0f, 3.0f});
  EXPECT_DOUBLE_EQ(d.mean, 2.0);
  EXPECT_DOUBLE_EQ(d.stddev, 1.0);
  LoadMeter m(2, 4);
  m.add(0, std::vector<int>{0, 1});
  m.add(0, std::vector<int>{2, 3});
  m.add(1, std::vector<int>{0, 1});
  EXPECT_DOUBLE_EQ(m.max_vio(0), 0.0);
  EXPECT_DOUBLE_EQ(m.max_vio(1), 1.0);
  EXPECT_DOUBLE_EQ(m.mean_max_vio(), 0.5);
  EXPECT_DOUBLE_EQ(max_vio(std::vector<int64_t>{0, 0}), 0.0);
}

}  // namespace
}  // namespace dsv3::balance
