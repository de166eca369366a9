// Helpers of the FP8 training tests: random matrices with outliers, the fp8 mode, and the plain
// reference of one FP8 GEMM (the tensor-core dot product per promotion block, promoted with one
// FFMA of the two tiles' scales) that the GEMMs must equal bit for bit.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "reference/fp8/format.h"
#include "reference/fp8/gemm.h"
#include "reference/fp8/quant.h"
#include "reference/train/fp8_linear.h"

namespace dsv3::train::testing {

inline Mat random_mat(int64_t r, int64_t c, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.0f, scale);
  Mat m(r, c);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = n(g);
  // A few outliers, so that tiles get different scales.
  for (int64_t i = 0; i < m.size(); i += 37) m.data()[i] *= 20.0f;
  return m;
}

inline LowPrecision fp8_mode(int tile, int promote = 128) {
  LowPrecision p;
  p.precision = Precision::kFp8;
  p.tile = tile;
  p.promote = promote;
  return p;
}

inline bool same_bits(float a, float b) {
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

// The plain reference of one FP8 GEMM y = a b^T: for every output, every promotion block of
// nc elements along K is one tensor-core chain (tc_dot without promotion), promoted with one
// FFMA of the two tiles' scales, in increasing K. a, b: quantized [M, K], [N, K].
inline Mat reference_gemm(const fp8::QMatrix& a, const fp8::QMatrix& b, int nc, bool bf16) {
  const int64_t M = a.rows, N = b.rows, K = a.cols;
  Mat y(M, N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float out = 0.0f;
      for (int64_t k0 = 0; k0 < K; k0 += nc) {
        const int64_t k1 = std::min<int64_t>(K, k0 + nc);
        std::vector<uint8_t> ra, rb;
        for (int64_t k = k0; k < k1; ++k) ra.push_back(a.code(i, k)), rb.push_back(b.code(j, k));
        const float partial = fp8::tc_dot(ra, a.format, rb, b.format, 0.0f, 0);
        out = std::fma(a.scale(i, k0) * b.scale(j, k0), partial, out);
      }
      y(i, j) = bf16 ? fp8::bf16_round(out) : out;
    }
  return y;
}

inline void expect_bit_equal(const Mat& got, const Mat& want) {
  ASSERT_EQ(got.rows(), want.rows());
  ASSERT_EQ(got.cols(), want.cols());
  int64_t diff = 0;
  for (int64_t i = 0; i < got.size(); ++i) diff += !same_bits(got.data()[i], want.data()[i]);
  EXPECT_EQ(diff, 0) << "of " << got.size() << " outputs";
}

}  // namespace dsv3::train::testing
