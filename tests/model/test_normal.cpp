// The counter-based normal generator (reference/model/normal.h): a good N(0, 1), the same bits
// for any thread count and chunking, and polynomial log / sin / cos that agree with libm.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "reference/model/normal.h"

namespace {
using namespace dsv3::model;

std::vector<float> draw(int64_t n, uint64_t seed, int threads) {
  std::vector<float> v(static_cast<size_t>(n));
  const int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  fill_normal(v.data(), n, seed, 1.0f);
  omp_set_num_threads(before);
  return v;
}

// 10^6 samples: mean 0 and variance 1 within 5 standard errors, the two-sided tails beyond
// 1, 2 and 3 sigma at 0.3173, 0.0455 and 0.0027 within 5 standard errors of a binomial count,
// skewness and excess kurtosis near 0, and no sample beyond the generator's bound 6.66.
TEST(FillNormal, IsAStandardNormal) {
  const int64_t n = 1000000;
  const std::vector<float> z = draw(n, 12345, 2);
  double s1 = 0, s2 = 0, s3 = 0, s4 = 0, max_abs = 0;
  int64_t beyond[4] = {0, 0, 0, 0};
  for (float x : z) {
    const double d = x;
    s1 += d;
    s2 += d * d;
    s3 += d * d * d;
    s4 += d * d * d * d;
    max_abs = std::max(max_abs, std::abs(d));
    for (int k = 1; k <= 3; ++k) beyond[k] += std::abs(d) > k;
  }
  const double mean = s1 / n, var = s2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 5.0 / std::sqrt(n));
  EXPECT_NEAR(var, 1.0, 5.0 * std::sqrt(2.0 / n));
  EXPECT_NEAR(s3 / n, 0.0, 5.0 * std::sqrt(15.0 / n));  // Var(z^3) = 15
  EXPECT_NEAR(s4 / n, 3.0, 5.0 * std::sqrt(96.0 / n));  // E z^4 = 3, Var(z^4) = 96
  const double tail[4] = {0, 0.317310507862914, 0.0455002638963584, 0.00269979606326019};
  for (int k = 1; k <= 3; ++k) {
    const double p = tail[k], se = std::sqrt(p * (1 - p) / n);
    EXPECT_NEAR(static_cast<double>(beyond[k]) / n, p, 5 * se) << "beyond " << k << " sigma";
  }
  EXPECT_LE(max_abs, 6.67);
  EXPECT_GT(max_abs, 4.0);  // 10^6 samples reach past 4 sigma (P(miss) ~ e^-63)
}

// Neighbours (the two halves of a Box-Muller pair, consecutive pairs) and two seeds are
// uncorrelated: |r| under 5 / sqrt(n).
TEST(FillNormal, NeighboursAndSeedsAreUncorrelated) {
  const int64_t n = 1000000;
  const std::vector<float> a = draw(n, 7, 2), b = draw(n, 8, 2);
  auto corr = [&](const std::vector<float>& x, int64_t xo, const std::vector<float>& y, int64_t yo,
                  int64_t step) {
    double s = 0;
    int64_t m = 0;
    for (int64_t i = 0; i + std::max(xo, yo) < n; i += step, ++m)
      s += double(x[i + xo]) * y[i + yo];
    return std::make_pair(s / m, 5.0 / std::sqrt(static_cast<double>(m)));
  };
  for (auto [r, bound] : {corr(a, 0, a, 1, 2),   // z0, z1 of one pair
                          corr(a, 1, a, 2, 2),   // z1 of a pair, z0 of the next
                          corr(a, 0, a, 2, 2),   // z0 of consecutive pairs
                          corr(a, 0, b, 0, 1)})  // two seeds, element by element
    EXPECT_LT(std::abs(r), bound);
  // The squares too: Box-Muller's z0^2 + z1^2 = -2 ln u1 is independent of the angle, so
  // z0^2 and z1^2 of one pair are uncorrelated (Cov = 0 for an exact normal pair).
  double s = 0;
  for (int64_t i = 0; i + 1 < n; i += 2)
    s += (double(a[i]) * a[i] - 1) * (double(a[i + 1]) * a[i + 1] - 1);
  EXPECT_LT(std::abs(s / (n / 2) / 2.0), 5.0 / std::sqrt(n / 2.0));  // Var(z^2) = 2
}

// The values are a function of (seed, index) alone: 1 thread, 2 and 3 threads give the same
// bits, and a prefix of a longer tensor (another n, odd or even) is the shorter one.
TEST(FillNormal, SameBitsForAnyThreadCount) {
  const int64_t n = 3 * 65536 + 12345;  // parallel (> 64K), tiles of 4096 pairs, a short tail
  const std::vector<float> one = draw(n, 99, 1);
  for (int threads : {2, 3}) {
    const std::vector<float> many = draw(n, 99, threads);
    EXPECT_EQ(std::memcmp(one.data(), many.data(), n * sizeof(float)), 0) << threads;
  }
  for (int64_t m : {int64_t{1}, int64_t{2}, int64_t{4095}, int64_t{65537}, n - 1}) {
    const std::vector<float> prefix = draw(m, 99, 2);
    EXPECT_EQ(std::memcmp(one.data(), prefix.data(), m * sizeof(float)), 0) << m;
  }
  EXPECT_NE(draw(16, 99, 1), draw(16, 100, 1));
  // stddev scales exactly (one multiply, correctly rounded).
  std::vector<float> scaled(64);
  fill_normal(scaled.data(), 64, 99, 0.5f);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(scaled[i], one[i] * 0.5f);
}

// Many tensors in one parallel loop (random_weights' form) hold the same values as one
// fill_normal per tensor: sizes below, at and above a tile, odd and even, one empty.
TEST(FillNormal, ManyTensorsAtOnceEqualOneAtATime) {
  const std::vector<int64_t> sizes = {3, 8192, 0, 8193, 65537, 200001, 1};
  std::vector<std::vector<float>> together(sizes.size());
  std::vector<NormalFill> fills;
  for (size_t k = 0; k < sizes.size(); ++k) {
    together[k].assign(static_cast<size_t>(sizes[k]), 0.0f);
    fills.push_back({together[k].data(), sizes[k], 1000 + k, 0.25f * (k + 1)});
  }
  const int before = omp_get_max_threads();
  for (int threads : {1, 3}) {
    omp_set_num_threads(threads);
    fill_normal(fills);
    for (size_t k = 0; k < sizes.size(); ++k) {
      std::vector<float> alone(static_cast<size_t>(sizes[k]));
      fill_normal(alone.data(), sizes[k], 1000 + k, 0.25f * (k + 1));
      EXPECT_EQ(alone, together[k]) << "tensor " << k << ", " << threads << " threads";
    }
  }
  omp_set_num_threads(before);
}

// The polynomial log and sin/cos against libm in double on the same two words: every sample
// within 4e-7 (relative to r, about 3 float ulps) of sqrt(-2 ln u1) (cos t, sin t), including
// the extremes of u1 (2^-32 and 1) and every quadrant boundary of t.
TEST(FillNormal, PolynomialsAgreeWithLibm) {
  auto reference = [](uint32_t a, uint32_t b, double& z0, double& z1) {
    // The same uniforms as normal.cpp, computed in double.
    const double u1 =
        static_cast<double>(static_cast<float>(static_cast<int32_t>(a >> 1)) * 0x1p-31f + 0x1p-32f);
    const double f = static_cast<double>((b >> 6) & 0xFFFFFFu) * 0x1p-24;
    const double t = (b >> 30) * (M_PI / 2) + (f * (M_PI / 2) - M_PI / 4);
    const double r = std::sqrt(-2.0 * std::log(u1));
    z0 = r * std::cos(t);
    z1 = r * std::sin(t);
  };
  double worst = 0;
  uint64_t x = 1;
  auto check = [&](uint32_t a, uint32_t b) {
    float z0, z1;
    normal_pair(a, b, z0, z1);
    double r0, r1;
    reference(a, b, r0, r1);
    const double r = std::max(std::hypot(r0, r1), 1e-3);
    worst = std::max({worst, std::abs(z0 - r0) / r, std::abs(z1 - r1) / r});
  };
  for (int i = 0; i < 1000000; ++i) {
    x = splitmix64(x);
    check(static_cast<uint32_t>(x), static_cast<uint32_t>(x >> 32));
  }
  for (uint32_t a : {0u, 1u, 2u, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFEu, 0xFFFFFFFFu})
    for (uint32_t b : {0u, 0x3FFFFFFFu, 0x40000000u, 0x7FFFFFFFu, 0x80000000u, 0xBFFFFFFFu,
                       0xC0000000u, 0xFFFFFFFFu})
      check(a, b);
  EXPECT_LT(worst, 4e-7);
  // u1 = 2^-32: the largest radius, sqrt(64 ln 2).
  float z0, z1;
  normal_pair(0, 0, z0, z1);
  EXPECT_NEAR(std::hypot(z0, z1), std::sqrt(64 * std::log(2.0)), 1e-5);
}

}  // namespace
