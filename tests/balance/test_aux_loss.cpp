// The balance losses that loss-free balancing replaced: values by hand, gradients against finite
// differences.
#include <gtest/gtest.h>

#include <vector>

#include "reference/balance/aux_loss.h"
#include "reference/balance/rng.h"

namespace dsv3::balance {
namespace {

TEST(AuxLoss, UniformRoutingGivesAlpha) {
  // Equal logits: s' = 1/N for every token; Σ f_i = N, so L = α·Σ f_i/N = α.
  const Mat z = Mat::Zero(8, 16);
  EXPECT_NEAR(sequence_balance_loss(z, 4, 8, 0.01).value, 0.01, 1e-12);
  // The expert-level loss with tokens spread evenly over all experts: f_i = 1, P_i = 1/N.
  std::vector<int> idx;
  for (int t = 0; t < 8; ++t)
    for (int j = 0; j < 4; ++j) idx.push_back((t * 4 + j) % 16);
  const AuxLoss l = expert_balance_loss(z, idx, 4, 0.01);
  for (double f : l.f) EXPECT_NEAR(f, 1.0, 1e-12);  // N/(K·T) · 2 tokens each = 16/32 · 2
  EXPECT_NEAR(l.value, 0.01, 1e-12);
}

TEST(AuxLoss, CollapsedRoutingGivesAlphaNOverK) {
  // Every token on the same K experts with s' concentrated there: f = N/K on them, P = 1/K.
  const int n = 16, k = 4, T = 32;
  Mat z = Mat::Constant(T, n, -40.0f);
  z.leftCols(k).setConstant(40.0f);
  const double alpha = 1e-4;
  const AuxLoss l = sequence_balance_loss(z, k, T, alpha);
  EXPECT_NEAR(l.value, alpha * n / k, 1e-9);
  EXPECT_NEAR(l.f[0], static_cast<double>(n) / k, 1e-12);
  EXPECT_NEAR(l.f[k], 0.0, 1e-12);
  EXPECT_NEAR(l.p[0], 1.0 / k, 1e-9);
}

TEST(AuxLoss, FUsesTheUnbiasedTopKPerSequence) {
  // Two sequences, each collapsed onto different experts: per sequence L = αN/K, mean too.
  const int n = 8, k = 2, T = 4;
  Mat z = Mat::Constant(2 * T, n, -30.0f);
  z.topRows(T).leftCols(k).setConstant(30.0f);
  z.bottomRows(T).rightCols(k).setConstant(30.0f);
  const AuxLoss l = sequence_balance_loss(z, k, T, 1.0);
  EXPECT_NEAR(l.value, static_cast<double>(n) / k, 1e-9);
  // The whole batch as one sequence is only half as imbalanced.
  EXPECT_NEAR(sequence_balance_loss(z, k, 2 * T, 1.0).value, 0.5 * n / k, 1e-9);
}

Mat random_logits(int T, int n, uint64_t seed) {
  Rng rng(seed);
  Mat z(T, n);
  for (Eigen::Index i = 0; i < z.size(); ++i) z.data()[i] = static_cast<float>(rng.normal());
  return z;
}

// Central differences in double through float logits: h = 1e-2 keeps rounding small, and the
// loss is smooth with f held fixed (f must not change between z ± h: checked).
template <typename F>
void check_gradient(const Mat& z, const Mat& grad, F loss_of) {
  const float h = 1e-2f;
  for (int t = 0; t < z.rows(); ++t)
    for (int i = 0; i < z.cols(); ++i) {
      Mat zp = z, zm = z;
      zp(t, i) += h;
      zm(t, i) -= h;
      const double fd = (loss_of(zp) - loss_of(zm)) / (2.0 * h);
      EXPECT_NEAR(grad(t, i), fd, 1e-4 * std::abs(fd) + 1e-9) << t << "," << i;
    }
}

TEST(AuxLoss, SequenceLossGradientMatchesFiniteDifferences) {
  Mat z = random_logits(12, 8, 5);
  // Separate each token's K-th and (K+1)-th logits so that ±h never changes the top-K (f).
  for (int t = 0; t < z.rows(); ++t)
    for (int i = 0; i < z.cols(); ++i)
      z(t, i) = static_cast<float>((i * 7 + t * 3) % 8) * 0.5f + 0.1f * z(t, i);
  const AuxLoss l = sequence_balance_loss(z, 2, 4, 0.3);
  check_gradient(z, l.grad_logits,
                 [](const Mat& m) { return sequence_balance_loss(m, 2, 4, 0.3).value; });
}

TEST(AuxLoss, ExpertLossGradientMatchesFiniteDifferences) {
  const Mat z = random_logits(10, 6, 9);
  std::vector<int> idx;
  for (int t = 0; t < 10; ++t) idx.insert(idx.end(), {t % 6, (t + 2) % 6});  // fixed choices
  for (ProbNorm norm : {ProbNorm::kNormalised, ProbNorm::kRaw}) {
    const AuxLoss l = expert_balance_loss(z, idx, 2, 0.5, norm);
    check_gradient(z, l.grad_logits,
                   [&](const Mat& m) { return expert_balance_loss(m, idx, 2, 0.5, norm).value; });
  }
}

TEST(AuxLoss, RejectsBadShapes) {
  const Mat z = Mat::Zero(6, 4);
  EXPECT_THROW(sequence_balance_loss(z, 2, 4, 1.0), std::invalid_argument);
  EXPECT_THROW(expert_balance_loss(z, std::vector<int>{0, 1}, 2, 1.0), std::invalid_argument);
}

}  // namespace
}  // namespace dsv3::balance
