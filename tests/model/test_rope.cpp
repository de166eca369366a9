// YaRN frequency tables and mscale against model_spec §5.2 / §6 reference values.
#include <gtest/gtest.h>

#include <cmath>

#include "reference/model/config.h"
#include "reference/model/rope.h"

namespace dsv3::model {
namespace {

Config v3_rope() {
  Config c;
  c.qk_nope_head_dim = 128;
  c.qk_rope_head_dim = 64;
  c.rope_theta = 10000;
  c.rope_scaling.yarn = true;
  c.rope_scaling.factor = 40;
  c.rope_scaling.original_max_position_embeddings = 4096;
  c.rope_scaling.beta_fast = 32;
  c.rope_scaling.beta_slow = 1;
  c.rope_scaling.mscale = 1.0;
  c.rope_scaling.mscale_all_dim = 1.0;
  return c;
}

TEST(Yarn, DeepSeekV3FrequencyTable) {
  RopeTable t = make_rope_table(v3_rope());
  EXPECT_EQ(t.low, 10);   // floor(10.4722)
  EXPECT_EQ(t.high, 23);  // ceil(22.5134)
  ASSERT_EQ(t.inv_freq.size(), 32u);
  auto rel = [](float got, double want) { return std::abs(got - want) / want; };
  EXPECT_LT(rel(t.inv_freq[0], 1.0), 1e-6);
  EXPECT_LT(rel(t.inv_freq[1], 0.7498942), 1e-6);
  EXPECT_LT(rel(t.inv_freq[10], 0.0562341), 1e-5);
  EXPECT_LT(rel(t.inv_freq[11], 0.0390069), 1e-5);
  EXPECT_LT(rel(t.inv_freq[12], 0.0268794), 1e-5);
  EXPECT_LT(rel(t.inv_freq[16], 0.0055), 1e-3);
  EXPECT_LT(rel(t.inv_freq[22], 1.778279e-4), 1e-5);
  EXPECT_LT(rel(t.inv_freq[23], 3.333804e-5), 1e-5);
  EXPECT_LT(rel(t.inv_freq[31], 3.333804e-6), 1e-5);
  EXPECT_FLOAT_EQ(t.ramp[11], 1.0f / 13);
  EXPECT_FLOAT_EQ(t.attention_factor, 1.0f);  // mscale == mscale_all_dim
}

TEST(Yarn, SoftmaxScaleWithMscale) {
  Config c = v3_rope();
  EXPECT_NEAR(c.softmax_scale(), 0.1352337788608801, 1e-15);
  c.rope_scaling.mscale = c.rope_scaling.mscale_all_dim = 0.707;  // V2-Lite
  EXPECT_NEAR(c.softmax_scale(), 0.1147213867929261, 1e-15);
  c.rope_scaling.yarn = false;
  EXPECT_NEAR(c.softmax_scale(), 1 / std::sqrt(192.0), 1e-15);
}

TEST(Yarn, AttentionFactorFollowsTransformersRule) {
  Config c = v3_rope();
  c.rope_scaling.mscale = 1.0;
  c.rope_scaling.mscale_all_dim = 0.8;
  RopeTable t = make_rope_table(c);
  EXPECT_NEAR(t.attention_factor, (0.1 * std::log(40.0) + 1) / (0.08 * std::log(40.0) + 1), 1e-6);
  c.rope_scaling.mscale = 0;  // absent: get_mscale(s) with m = 1
  c.rope_scaling.mscale_all_dim = 0;
  EXPECT_NEAR(make_rope_table(c).attention_factor, 0.1 * std::log(40.0) + 1, 1e-6);
}

TEST(Rope, RotatesInterleavedPairsAndPreservesDotProductsOfEqualShifts) {
  Config c = v3_rope();
  c.rope_scaling.yarn = false;
  RopeTable t = make_rope_table(c);
  std::vector<float> x(64), y(64);
  for (int i = 0; i < 64; ++i) {
    x[i] = std::sin(0.3f * i + 1);
    y[i] = std::cos(0.7f * i);
  }
  auto dot = [](const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
  };
  // Pair 0 has frequency 1: at position 1, (x0, x1) rotates by exactly 1 radian.
  std::vector<float> r = x;
  t.apply(r.data(), 1, 1);
  EXPECT_NEAR(r[0], x[0] * std::cos(1.0) - x[1] * std::sin(1.0), 1e-6);
  EXPECT_NEAR(r[1], x[0] * std::sin(1.0) + x[1] * std::cos(1.0), 1e-6);
  // q(m) . k(n) depends only on m - n.
  std::vector<float> a = x, b = y, a2 = x, b2 = y;
  t.apply(a.data(), 1, 7);
  t.apply(b.data(), 1, 3);
  t.apply(a2.data(), 1, 104);
  t.apply(b2.data(), 1, 100);
  EXPECT_NEAR(dot(a, b), dot(a2, b2), 1e-4);
}

}  // namespace
}  // namespace dsv3::model
