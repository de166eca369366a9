// Compact weights (issue 18): every storage format decodes exactly, and the products that
// dequantize inside the multiplication give the same bits as dequantize-then-float32 for the
// same summation order; where the order differs (fused_matvec against Eigen), the classic
// dot-product bound |y - y*| <= gamma_n sum |w_i x_i| holds.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "reference/io/safetensors.h"
#include "reference/model/compact_linear.h"
#include "reference/model/model.h"
#include "reference/model/sampling.h"
#include "tests/support/compact_random.h"

namespace dsv3::model {
namespace {

using test_support::random_compact;
using test_support::random_x;
using test_support::same_bits;

const WeightFormat kFormats[] = {WeightFormat::kF32, WeightFormat::kBF16, WeightFormat::kF16,
                                 WeightFormat::kFP8};

TEST(CompactLinear, EveryE4M3CodeDecodesAsTheScalarDecoder) {
  // Two 128-column blocks with different scales: the vector path decodes all 256 codes, the
  // scale multiplies once (W = float(q) * scale_inv, model_spec §9).
  std::vector<uint8_t> codes(256);
  for (int i = 0; i < 256; ++i) codes[i] = static_cast<uint8_t>(i);
  CompactMatrix w = make_compact(WeightFormat::kFP8, 1, 256, codes, {1.0f, 0.375f});
  std::vector<float> row(256);
  w.row(0, row.data());
  for (int i = 0; i < 256; ++i) {
    const float want = io::e4m3fn_to_f32(static_cast<uint8_t>(i)) * (i < 128 ? 1.0f : 0.375f);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(row[i])) << i;
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(row[i]), std::bit_cast<uint32_t>(want)) << "code " << i;
    }
  }
  EXPECT_EQ(row[0x7E], 448.0f);                                // max normal
  EXPECT_EQ(row[0x01], std::ldexp(1.0f, -9));                  // min subnormal
  EXPECT_EQ(std::bit_cast<uint32_t>(row[0x80]), 0x80000000u);  // -0
}

TEST(CompactLinear, RowsDecodeBitForBitLikeTheReferenceInEveryFormat) {
  // 130 x 300: partial 128-blocks in both directions and a tail that is not a multiple of 8.
  // FP8 rows without a NaN code take the four-instruction decoder, rows with one the blend one.
  for (WeightFormat f : kFormats)
    for (bool finite : {true, false}) {
      CompactMatrix w = random_compact(f, 130, 300, 7, finite || f == WeightFormat::kF16);
      EXPECT_TRUE(same_bits(w.to_f32(), w.to_f32_reference())) << to_string(f) << " " << finite;
    }
  // Every finite E4M3 code (subnormals, +-0, +-448) through the four-instruction decoder, with a
  // scale that makes some products float32 denormals and one at the 2^7 limit.
  for (float scale : {1.0f, 0x1p-130f, 127.0f}) {
    std::vector<uint8_t> codes;
    for (int i = 0; i < 256; ++i)
      if ((i & 0x7F) != 0x7F) codes.push_back(static_cast<uint8_t>(i));
    CompactMatrix w = make_compact(WeightFormat::kFP8, 1, 254, codes, {scale, scale});
    EXPECT_TRUE(same_bits(w.to_f32(), w.to_f32_reference())) << scale;
  }
}

TEST(CompactLinear, MatmulIsBitIdenticalToDequantizeThenFloat32) {
  for (WeightFormat f : kFormats)
    for (int64_t t : {1, 3, 8, 9, 20}) {  // <= 8 rows: row by row; more: Eigen's GEMM
      CompactMatrix w = random_compact(f, 200, 260, 11 + t);
      Mat x = random_x(t, 260, 5 + t);
      EXPECT_TRUE(same_bits(matmul_wt(x, w), matmul_wt_reference(x, w)))
          << to_string(f) << " T=" << t;
      // ... and to the float32 model's own product on the dequantized matrix.
      EXPECT_TRUE(same_bits(matmul_wt(x, w), matmul_wt(x, w.to_f32_reference())))
          << to_string(f) << " T=" << t;
    }
}

// The plain form of Eigen's dot-product order, held against Eigen itself (rows of a row-major
// matrix, as model::matmul_wt dots them): the fast kernel below copies this order, so a change in
// Eigen's summation shows up here first.
TEST(CompactLinear, EigenOrderReferenceIsEigensDot) {
  for (int64_t n = 0; n <= 300; ++n) {
    Mat ab = random_x(2, n, 100 + n);
    const float eigen = ab.row(0).dot(ab.row(1));
    const float ref = dot_eigen_order_reference(ab.row(0).data(), ab.row(1).data(), n);
    EXPECT_EQ(std::bit_cast<uint32_t>(ref), std::bit_cast<uint32_t>(eigen)) << "n=" << n;
  }
  // All products -0: Eigen starts from the first product, not from +0, and so keeps the sign.
  Mat z = Mat::Zero(2, 40);
  z.row(0).setConstant(-0.0f);
  z.row(1).setConstant(1.0f);
  EXPECT_EQ(
      std::bit_cast<uint32_t>(dot_eigen_order_reference(z.row(0).data(), z.row(1).data(), 40)),
      std::bit_cast<uint32_t>(z.row(0).dot(z.row(1))));
  EXPECT_TRUE(std::signbit(z.row(0).dot(z.row(1))));
}

// The decode product with the weights decoded in registers gives the float32 model's bits: every
// format, widths with and without a tail, fewer than 8 columns, row counts not a multiple of 4.
TEST(CompactLinear, MatvecInRegistersIsBitIdenticalToTheFloat32Model) {
  for (WeightFormat f : kFormats)
    for (int64_t in : {5, 8, 24, 130, 300, 1031})
      for (int64_t out : {1, 6, 130}) {
        CompactMatrix w = random_compact(f, out, in, 3 * in + out);
        const Mat wf = w.to_f32_reference();
        Mat x = random_x(1, in, in);
        Mat fast(1, out), plain(1, out);
        matvec_eigen_order(w, x.data(), fast.data());
        for (int64_t o = 0; o < out; ++o)
          plain(0, o) = dot_eigen_order_reference(wf.row(o).data(), x.data(), in);
        EXPECT_TRUE(same_bits(fast, plain)) << to_string(f) << " " << out << "x" << in;
        if (f == WeightFormat::kFP8) {  // a pass found no NaN code: the next one checks none
          EXPECT_EQ(w.nan_codes->load(), CompactMatrix::kNone);
          matvec_eigen_order(w, x.data(), fast.data());
          EXPECT_TRUE(same_bits(fast, plain)) << out << "x" << in;
        }
        EXPECT_TRUE(same_bits(fast, model::matmul_wt(x, wf)))
            << to_string(f) << " " << out << "x" << in;
      }
}

// Rows the four-instruction FP8 decoder cannot take: a NaN code (the row is NaN, as in float32)
// and a block scale of 2^7 or more (s * 2^120 would overflow): the exact decoder answers them.
TEST(CompactLinear, MatvecInRegistersTakesNaNCodesAndLargeScalesExactly) {
  for (bool large_scale : {false, true}) {
    CompactMatrix w = random_compact(WeightFormat::kFP8, 9, 260, 41);
    std::vector<uint8_t> bytes(w.data, w.data + 9 * 260);
    bytes[2 * 260 + 17] = 0xFF;  // row 2: a NaN code
    if (large_scale) w.scale_inv[1] = 300.0f;
    w = make_compact(WeightFormat::kFP8, 9, 260, bytes, w.scale_inv);
    const Mat wf = w.to_f32_reference();
    Mat x = random_x(1, 260, 2);
    Mat fast(1, 9);
    matvec_eigen_order(w, x.data(), fast.data());
    EXPECT_EQ(w.nan_codes->load(), CompactMatrix::kSome);
    matvec_eigen_order(w, x.data(), fast.data());  // the second pass knows, and checks again
    const Mat want = model::matmul_wt(x, wf);
    for (int o = 0; o < 9; ++o) {
      if (o == 2) {
        EXPECT_TRUE(std::isnan(fast(0, o))) << large_scale;
      } else {
        EXPECT_EQ(std::bit_cast<uint32_t>(fast(0, o)), std::bit_cast<uint32_t>(want(0, o)))
            << "row " << o << " large_scale " << large_scale;
      }
    }
  }
}

// Prefill slice by slice (no float32 copy of the whole W) sums in another order than one GEMM:
// both are within gamma_n = n u / (1 - n u) of the exact sum relative to sum |w_i x_i|
// (Higham, eq. 3.5), for widths past Eigen's k-panel and slices that do not divide the rows.
TEST(CompactLinear, PrefillBlockByBlockIsWithinTheDotProductBound) {
  const int64_t in = 1031;
  const double u = std::numeric_limits<float>::epsilon() / 2;
  const double gamma = in * u / (1 - in * u);
  for (WeightFormat f : {WeightFormat::kFP8, WeightFormat::kBF16})
    for (int64_t block_rows : {7, 64, 256}) {
      CompactMatrix w = random_compact(f, 300, in, 5 + block_rows);
      const Mat wf = w.to_f32_reference();
      Mat x = random_x(37, in, 9);
      const Mat blocked = matmul_wt_blocked(x, w, block_rows);
      const Mat whole = x * wf.transpose();
      ASSERT_EQ(blocked.rows(), 37);
      ASSERT_EQ(blocked.cols(), 300);
      for (int64_t t = 0; t < x.rows(); t += 6)
        for (int64_t o = 0; o < w.rows; ++o) {
          double exact = 0, abs_sum = 0;
          for (int64_t i = 0; i < in; ++i) {
            exact += static_cast<double>(wf(o, i)) * x(t, i);
            abs_sum += std::abs(static_cast<double>(wf(o, i)) * x(t, i));
          }
          ASSERT_LE(std::abs(blocked(t, o) - exact), gamma * abs_sum)
              << to_string(f) << " block_rows=" << block_rows << " " << t << "," << o;
          ASSERT_LE(std::abs(whole(t, o) - exact), gamma * abs_sum);
        }
    }
}

TEST(CompactLinear, FusedMatvecFollowsItsDocumentedOrderExactly) {
  for (WeightFormat f : kFormats)
    for (int64_t in : {31, 32, 300, 896}) {
      CompactMatrix w = random_compact(f, 150, in, 23 + in);
      Mat x = random_x(1, in, 3);
      Mat fast(1, w.rows), ref(1, w.rows);
      fused_matvec(w, x.data(), fast.data());
      fused_matvec_reference(w.to_f32_reference(), x.data(), ref.data());
      EXPECT_TRUE(same_bits(fast, ref)) << to_string(f) << " in=" << in;
    }
}

TEST(CompactLinear, FusedMatvecIsWithinTheDotProductBoundOfEigen) {
  // Another summation order than Eigen's: both are within gamma_n = n u / (1 - n u) of the exact
  // sum, relative to sum |w_i x_i| (Higham, Accuracy and Stability, eq. 3.5), so they differ by
  // at most twice that.
  const int64_t in = 1000;
  CompactMatrix w = random_compact(WeightFormat::kFP8, 64, in, 99);
  Mat x = random_x(1, in, 4);
  Mat wf = w.to_f32_reference();
  Mat fused(1, w.rows);
  fused_matvec(w, x.data(), fused.data());
  Mat eigen = matmul_wt(x, wf);
  const double u = std::numeric_limits<float>::epsilon() / 2;
  const double gamma = in * u / (1 - in * u);
  bool some_differ = false;
  for (int64_t o = 0; o < w.rows; ++o) {
    double exact = 0, abs_sum = 0;
    for (int64_t i = 0; i < in; ++i) {
      exact += static_cast<double>(wf(o, i)) * x(0, i);
      abs_sum += std::abs(static_cast<double>(wf(o, i)) * x(0, i));
    }
    EXPECT_LE(std::abs(fused(0, o) - exact), gamma * abs_sum) << o;
    EXPECT_LE(std::abs(eigen(0, o) - exact), gamma * abs_sum) << o;
    some_differ |= fused(0, o) != eigen(0, o);
  }
  (void)some_differ;  // the orders may or may not round alike; the bound is what is promised
}

TEST(CompactLinear, BadShapesAreRefused) {
  EXPECT_THROW(make_compact(WeightFormat::kBF16, 2, 3, std::vector<uint8_t>(11)),
               std::invalid_argument);
  EXPECT_THROW(make_compact(WeightFormat::kFP8, 2, 3, std::vector<uint8_t>(6), {}),
               std::invalid_argument);  // FP8 needs its ceil(2/128) x ceil(3/128) = 1 scale
  CompactMatrix w = random_compact(WeightFormat::kBF16, 4, 8, 1);
  EXPECT_THROW(matmul_wt(Mat::Zero(1, 7), w), std::invalid_argument);
}

}  // namespace
}  // namespace dsv3::model
