// Fine-grained quantization (paper section 3.3.2): 1x128 activation tiles, 128x128 weight
// blocks, scale = max(amax, 1e-4) / 448, optional UE8M0 scales; per-tensor and delayed scaling.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <vector>

#include "reference/fp8/analysis.h"
#include "reference/fp8/quant.h"

namespace dsv3::fp8 {
namespace {

// amax of tile (tr, tc) of x.
float tile_amax(const Mat& x, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  return x.block(r0, c0, r1 - r0, c1 - c0).cwiseAbs().maxCoeff();
}

// The quantizers' branch-free encoder is the saturating encode(), bit for bit: every binary32
// pattern on a stride, and around every possible rounding position of every exponent (ties,
// one ulp either side), both signs, both formats.
TEST(Fp8Quant, FastEncoderEqualsEncode) {
  std::vector<uint32_t> bits;
  for (uint64_t b = 0; b <= 0x7F800000u; b += 4093) bits.push_back(static_cast<uint32_t>(b));
  for (uint32_t e = 0; e < 256; ++e)
    for (int j = 0; j < 23; ++j)
      for (uint32_t k : {1u, 2u, 3u, 5u, 7u})
        for (int d : {-1, 0, 1}) {
          const uint32_t m = ((k << j) + static_cast<uint32_t>(d)) & 0x7FFFFFu;
          bits.push_back((e << 23) | m);
        }
  int64_t diff = 0;
  for (Format f : {Format::kE4M3, Format::kE5M2})
    for (uint32_t b : bits)
      for (uint32_t sign : {0u, 0x80000000u}) {
        const float v = std::bit_cast<float>(b | sign);
        const uint8_t want = encode(v, f, Overflow::kSaturate), got = encode_fast(v, f);
        if (want != got && ++diff <= 5)
          ADD_FAILURE() << info(f).name << " " << std::hexfloat << v << ": encode 0x" << std::hex
                        << int{want} << ", fast 0x" << int{got};
      }
  EXPECT_EQ(diff, 0) << "of " << 4 * bits.size() << " values";
}

TEST(Fp8Quant, ActivationTilesAreOneTokenBy128Channels) {
  Mat x = random_matrix(5, 300, Dist::kRandn, 1) * 3.0f;  // 300 = 2 full tiles + 44
  x(2, 140) = -57.0f;
  const QMatrix q = quantize_activations(x);
  EXPECT_EQ(q.tile_rows, 1);
  EXPECT_EQ(q.tile_cols, 128);
  ASSERT_EQ(q.scale_rows(), 5);
  ASSERT_EQ(q.scale_cols(), 3);
  for (int64_t r = 0; r < 5; ++r) {
    for (int64_t t = 0; t < 3; ++t) {
      const int64_t c0 = t * 128, c1 = std::min<int64_t>(300, c0 + 128);
      const float amax = tile_amax(x, r, r + 1, c0, c1);
      EXPECT_EQ(q.scales[static_cast<size_t>(r * 3 + t)], amax / 448.0f);
      // The element attaining amax lands on +-448 exactly.
      for (int64_t c = c0; c < c1; ++c) {
        if (std::abs(x(r, c)) == amax) {
          EXPECT_EQ(std::abs(decode(q.code(r, c), q.format)), 448.0f);
        }
      }
    }
  }
  EXPECT_EQ(decode(q.code(2, 140), q.format), -448.0f);
}

TEST(Fp8Quant, WeightBlocksAre128By128) {
  const Mat w = random_matrix(200, 260, Dist::kRandn, 2) * 0.02f;
  const QMatrix q = quantize_weights(w);
  ASSERT_EQ(q.scale_rows(), 2);
  ASSERT_EQ(q.scale_cols(), 3);
  EXPECT_EQ(q.scales[4], tile_amax(w, 128, 200, 128, 256) / 448.0f);
  // Dequantization error: E4M3 has 3 mantissa bits -> relative step 2^-3, half of it per element
  // for normals; subnormals are bounded by half the smallest step times the scale.
  const Mat d = q.dequantize();
  for (int64_t r = 0; r < w.rows(); ++r) {
    for (int64_t c = 0; c < w.cols(); ++c) {
      const float s = q.scale(r, c);
      EXPECT_LE(std::abs(d(r, c) - w(r, c)),
                std::max(std::abs(w(r, c)) * 0x1p-4f, s * 0x1p-10f) * 1.0001f);
    }
  }
}

TEST(Fp8Quant, AllZeroTileUsesTheAmaxFloor) {
  const Mat z = Mat::Zero(1, 128);
  const QMatrix q = quantize_activations(z);
  EXPECT_EQ(q.scales[0], 1e-4f / 448.0f);
  for (uint8_t c : q.codes) EXPECT_EQ(c, 0);
}

TEST(Fp8Quant, Ue8m0ScalesArePowersOfTwoAtOrAboveAmaxOver448) {
  const Mat x = random_matrix(8, 512, Dist::kRandn, 3) * 7.3f;
  QuantOptions o;
  o.ue8m0 = true;
  const QMatrix q = quantize_activations(x, o);
  for (int64_t r = 0; r < 8; ++r) {
    for (int64_t t = 0; t < 4; ++t) {
      const float s = q.scales[static_cast<size_t>(r * 4 + t)];
      int e;
      EXPECT_EQ(std::frexp(s, &e), 0.5f) << "not a power of two: " << s;
      const float amax = tile_amax(x, r, r + 1, t * 128, t * 128 + 128);
      EXPECT_GE(s, amax / 448.0f);
      EXPECT_LT(s, 2 * amax / 448.0f);
      float qmax = 0;
      for (int64_t c = t * 128; c < t * 128 + 128; ++c)
        qmax = std::max(qmax, std::abs(decode(q.code(r, c), q.format)));
      EXPECT_GT(qmax, 224.0f);
      EXPECT_LE(qmax, 448.0f);
    }
  }
}

TEST(Fp8Quant, PerTensorAndRetile128x1) {
  const Mat x = random_matrix(256, 256, Dist::kRandn, 4);
  const QMatrix t = quantize_per_tensor(x);
  EXPECT_EQ(t.scales.size(), 1u);
  EXPECT_EQ(t.scales[0], x.cwiseAbs().maxCoeff() / 448.0f);
  const QMatrix a = quantize_activations(x);
  const QMatrix b = retile_128x1(a);
  EXPECT_EQ(b.tile_rows, 128);
  EXPECT_EQ(b.tile_cols, 1);
  EXPECT_EQ(b.scale_rows(), 2);
  EXPECT_EQ(b.scale_cols(), 256);
  // Requantizing the dequantized 1x128 values per 128 tokens adds at most one more rounding.
  const Mat da = a.dequantize(), db = b.dequantize();
  const double rel = (db - x).norm() / x.norm();
  EXPECT_LT(rel, 0.06);
  EXPECT_GT((db - da).norm(), 0.0);
}

TEST(Fp8Quant, DelayedScalingUsesHistoryAndOverflowsOnASpike) {
  DelayedScaling ds(/*history_len=*/2);
  const Mat x = random_matrix(4, 128, Dist::kRandn, 5);
  ds.quantize_step(x);  // first step: scale 1, no history yet
  EXPECT_EQ(ds.scale(), x.cwiseAbs().maxCoeff() / 448.0f);
  // A spike 10x larger than the history: delayed scaling saturates, online scaling would not.
  const Mat spike = x * 10.0f;
  const QMatrix q = ds.quantize_step(spike);
  EXPECT_GT(ds.overflows(), 0);
  int at_max = 0;
  for (uint8_t c : q.codes) at_max += std::abs(decode(c, q.format)) == 448.0f;
  EXPECT_GT(at_max, 1);
  ds.record(0.5f);
  ds.record(0.25f);  // the spike has left the 2-step window
  EXPECT_EQ(ds.scale(), 0.5f / 448.0f);
}

}  // namespace
}  // namespace dsv3::fp8
