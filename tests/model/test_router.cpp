// The gate on hand-computed cases (eq. 12-16 and DeepSeek-V2's group-limited routing).
#include <gtest/gtest.h>

#include <cmath>

#include "reference/model/router.h"

namespace dsv3::model {
namespace {

Config v3_like(int experts, int groups, int topk_group, int k) {
  Config c;
  c.source = "test";
  c.n_routed_experts = experts;
  c.n_group = groups;
  c.topk_group = topk_group;
  c.num_experts_per_tok = k;
  c.scoring_func = ScoringFunc::kSigmoid;
  c.topk_method = TopkMethod::kNoauxTc;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = 2.5;
  return c;
}

float logit(float s) {
  return std::log(s / (1 - s));
}

TEST(Router, GroupScoreIsTopTwoSumAndBiasOnlySelects) {
  // 8 experts in 4 groups of 2; keep 2 groups; top-2.
  Config c = v3_like(8, 4, 2, 2);
  std::vector<float> s = {0.9f, 0.1f, 0.5f, 0.45f, 0.3f, 0.3f, 0.2f, 0.6f};
  std::vector<float> logits;
  for (float v : s) logits.push_back(logit(v));
  std::vector<float> bias(8, 0.0f);
  RouteResult r = route(c, logits, bias);
  // Group sums: g0 1.0, g1 0.95, g2 0.6, g3 0.8 -> keep {0, 1}; top-2 inside: experts 0 and 2.
  ASSERT_EQ(r.group_scores.size(), 4u);
  EXPECT_NEAR(r.group_scores[0], 1.0f, 1e-6);
  EXPECT_NEAR(r.group_scores[3], 0.8f, 1e-6);
  EXPECT_EQ(r.groups_kept, (std::vector<int>{0, 1}));
  EXPECT_EQ(r.topk_idx, (std::vector<int>{0, 2}));
  EXPECT_NEAR(r.topk_weight[0], 0.9f / 1.4f * 2.5f, 1e-6);
  EXPECT_NEAR(r.topk_weight[1], 0.5f / 1.4f * 2.5f, 1e-6);

  // A bias on expert 7 pulls group 3 in and expert 7 into the top-2 ...
  bias[7] = 0.5f;
  RouteResult b = route(c, logits, bias);
  EXPECT_EQ(b.groups_kept, (std::vector<int>{3, 0}));
  EXPECT_EQ(b.topk_idx, (std::vector<int>{7, 0}));
  // ... but its gate value uses the unbiased score (eq. 16 vs eq. 13).
  EXPECT_NEAR(b.topk_weight[0], 0.6f / 1.5f * 2.5f, 1e-6);
  EXPECT_NEAR(b.biased[7], 1.1f, 1e-6);
}

TEST(Router, ConstantShiftOfAllBiasesChangesNoSelection) {
  Config c = v3_like(16, 4, 2, 4);
  std::vector<float> logits(16), bias(16), shifted(16);
  for (int i = 0; i < 16; ++i) {
    logits[i] = std::sin(1.7f * i);
    bias[i] = 0.01f * std::cos(3.1f * i);
    shifted[i] = bias[i] + 0.37f;
  }
  EXPECT_EQ(route(c, logits, bias).topk_idx, route(c, logits, shifted).topk_idx);
  EXPECT_EQ(route(c, logits, bias).topk_weight, route(c, logits, shifted).topk_weight);
}

TEST(Router, MaskFillMattersOnlyWhenBiasedScoresGoNegative) {
  // Keep 1 group of 2; top-2 needs both experts of group 0, but expert 1's biased score is
  // negative: with -inf fill it is still chosen; with HF's old 0.0 fill expert 2 (masked, 0) ties
  // above it and is chosen instead.
  Config c = v3_like(4, 2, 1, 2);
  std::vector<float> logits = {logit(0.9f), logit(0.2f), logit(0.5f), logit(0.1f)};
  std::vector<float> bias = {0.0f, -0.5f, -0.8f, 0.0f};
  EXPECT_EQ(route(c, logits, bias).topk_idx, (std::vector<int>{0, 1}));
  RouterOptions zero;
  zero.masked_fill = 0.0f;
  EXPECT_EQ(route(c, logits, bias, zero).topk_idx, (std::vector<int>{0, 2}));
}

TEST(Router, V2SoftmaxGroupMaxWithoutNormalisation) {
  Config c;
  c.source = "test";
  c.n_routed_experts = 4;
  c.n_group = 2;
  c.topk_group = 1;
  c.num_experts_per_tok = 1;
  c.scoring_func = ScoringFunc::kSoftmax;
  c.topk_method = TopkMethod::kGroupLimitedGreedy;
  c.norm_topk_prob = false;
  c.routed_scaling_factor = 16.0;
  std::vector<float> logits = {0.0f, std::log(3.0f), std::log(2.0f), std::log(2.0f)};
  RouteResult r = route(c, logits, {});
  // softmax: 1/8, 3/8, 2/8, 2/8; group max: 3/8 vs 2/8 -> group 0; top-1 expert 1.
  EXPECT_NEAR(r.scores[1], 3.0f / 8, 1e-6);
  EXPECT_NEAR(r.group_scores[0], 3.0f / 8, 1e-6);
  EXPECT_EQ(r.topk_idx, (std::vector<int>{1}));
  EXPECT_NEAR(r.topk_weight[0], 3.0f / 8 * 16.0f, 1e-5);
}

}  // namespace
}  // namespace dsv3::model
