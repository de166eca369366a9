#include <gtest/gtest.h>

#include <cmath>

#include "reference/io/tokenizer.h"
#include "reference/model/sampling.h"

namespace dsv3::model {
namespace {

TEST(Sampling, GreedyIsArgmax) {
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.9f};
  Rng rng(1);
  EXPECT_EQ(sample(logits, {}, rng), 1);
}

TEST(Sampling, TemperatureAndTopPDistribution) {
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  std::vector<double> p = sampling_distribution(logits, {1.0, 1.0, 0});
  EXPECT_NEAR(p[0], 0.5, 1e-6);
  EXPECT_NEAR(p[3], 0.05, 1e-6);
  // top-p 0.75 keeps {0.5, 0.3}, renormalised.
  std::vector<double> q = sampling_distribution(logits, {1.0, 0.75, 0});
  EXPECT_NEAR(q[0], 0.625, 1e-6);
  EXPECT_NEAR(q[1], 0.375, 1e-6);
  EXPECT_EQ(q[2], 0.0);
  // Temperature 2 flattens: p ~ sqrt(p).
  std::vector<double> f = sampling_distribution(logits, {2.0, 1.0, 0});
  double z = std::sqrt(0.5) + std::sqrt(0.3) + std::sqrt(0.15) + std::sqrt(0.05);
  EXPECT_NEAR(f[0], std::sqrt(0.5) / z, 1e-6);
}

TEST(Sampling, EmpiricalFrequenciesMatchAndSeedsReproduce) {
  std::vector<float> logits = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplingParams sp{1.0, 1.0, 42};
  Rng rng(sp.seed);
  std::vector<int> count(3, 0);
  const int n = 60000;
  for (int i = 0; i < n; ++i) ++count[sample(logits, sp, rng)];
  EXPECT_NEAR(count[0] / double(n), 0.6, 0.01);
  EXPECT_NEAR(count[2] / double(n), 0.1, 0.01);
  Rng a(5), b(5);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sample(logits, sp, a), sample(logits, sp, b));
}

TEST(Sampling, RejectsBadParameters) {
  std::vector<float> logits = {0.0f, 1.0f};
  EXPECT_THROW(sampling_distribution(logits, {1.0, 0.0, 0}), std::invalid_argument);
  EXPECT_THROW(sampling_distribution(logits, {0.0, 1.0, 0}), std::invalid_argument);
}

TEST(Tokenizer, ByteLevelRoundTripAndPieces) {
  io::ByteTokenizer tok;
  std::vector<int32_t> ids = tok.encode("Hi\n");
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 'H' + 3, 'i' + 3, '\n' + 3}));
  EXPECT_EQ(tok.decode(ids), "Hi\n");
  EXPECT_EQ(tok.piece(0), "<BOS>");
  EXPECT_EQ(tok.piece('\n' + 3), "\\n");
  EXPECT_EQ(tok.piece(7 + 3), "<0x07>");
  EXPECT_EQ(tok.piece(300), "<300>");
}

TEST(Tokenizer, ParseIds) {
  EXPECT_EQ(io::parse_ids("3,17, 5"), (std::vector<int32_t>{3, 17, 5}));
  EXPECT_THROW(io::parse_ids("3,,5"), std::invalid_argument);
  EXPECT_THROW(io::parse_ids("3,x"), std::invalid_argument);
  EXPECT_THROW(io::parse_ids("-1"), std::invalid_argument);
  EXPECT_THROW(io::parse_ids(""), std::invalid_argument);
}

}  // namespace
}  // namespace dsv3::model
