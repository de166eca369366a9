// Random matrices for the compact-weight tests (test_compact_linear, test_compact_gemm): weights
// in every storage format from a seed, float32 inputs, and a bit-for-bit comparison.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "reference/model/compact_linear.h"
#include "reference/model/sampling.h"

namespace dsv3::model::test_support {

inline double gaussian(Rng& rng) {  // Box-Muller
  const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Random bytes of format f for a [rows, cols] matrix: no NaN codes when finite_only (NaN != NaN
// would hide a mismatch in products), F16 never NaN or Inf (F16C keeps NaN payloads, the scalar
// decoder does not).
inline CompactMatrix random_compact(WeightFormat f, int64_t rows, int64_t cols, uint64_t seed,
                                    bool finite_only = true) {
  Rng rng(seed);
  std::vector<uint8_t> bytes(static_cast<size_t>(rows * cols) * element_bytes(f));
  std::vector<float> scales;
  auto normal = [&]() { return static_cast<float>(gaussian(rng)); };
  switch (f) {
    case WeightFormat::kFP8:
      for (uint8_t& b : bytes) {
        b = static_cast<uint8_t>(rng.next() & 0xFF);
        if (finite_only && (b & 0x7F) == 0x7F) b ^= 0x01;
      }
      for (int64_t i = 0; i < ((rows + 127) / 128) * ((cols + 127) / 128); ++i)
        scales.push_back(std::ldexp(1.0f + 0.37f * static_cast<float>(i % 5), -12 + int(i % 7)));
      break;
    case WeightFormat::kBF16:
      for (size_t i = 0; i < bytes.size(); i += 2) {
        const uint16_t v = static_cast<uint16_t>(std::bit_cast<uint32_t>(normal()) >> 16);
        std::memcpy(&bytes[i], &v, 2);
      }
      break;
    case WeightFormat::kF16:
      for (size_t i = 0; i < bytes.size(); i += 2) {
        uint16_t v = static_cast<uint16_t>(rng.next() & 0xFFFF);
        if (((v >> 10) & 0x1F) == 0x1F) v &= 0xBFFF;  // exponent 31 (Inf/NaN) -> finite
        std::memcpy(&bytes[i], &v, 2);
      }
      break;
    case WeightFormat::kF32:
      for (size_t i = 0; i < bytes.size(); i += 4) {
        const float v = normal();
        std::memcpy(&bytes[i], &v, 4);
      }
      break;
  }
  return make_compact(f, rows, cols, std::move(bytes), std::move(scales));
}

inline Mat random_x(int64_t rows, int64_t cols, uint64_t seed) {
  Rng rng(seed);
  Mat x(rows, cols);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(gaussian(rng));
  return x;
}

inline bool same_bits(const Mat& a, const Mat& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

}  // namespace dsv3::model::test_support
