// Accumulation-error experiments (paper section 3.3.2: "Taking GEMM operations of two random
// matrices with K = 4096 ... maximum relative error of nearly 2%"): quantize random matrices,
// multiply with a chosen accumulation, compare with the exact sum of the quantized products.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string_view>

#include "reference/fp8/gemm.h"
#include "reference/model/tensor.h"

namespace dsv3::fp8 {

enum class Dist { kRandn, kUniform, kRandnPlusHalf };  // N(0,1), U(0,1), N(0.5,1)
Dist parse_dist(std::string_view name);                // "randn" | "uniform" | "randn+0.5"
const char* to_string(Dist d);

// Deterministic on every platform (splitmix64 + Box-Muller), the same for the same seed.
Mat random_matrix(int64_t rows, int64_t cols, Dist dist, uint64_t seed);

struct ErrorStats {
  double rel_fro = 0;  // ||R - E||_F / ||E||_F
  double max_rel = 0;  // max over elements of |R - E| / |E|
  double p99_rel = 0;  // 99th percentile of the same
  double median_rel = 0;
  double mean_signed_rel = 0;  // mean of (R - E) / |E|: negative = shrink toward zero
  int64_t count = 0;           // elements with E != 0
};
ErrorStats error_stats(const Mat& result, const Eigen::MatrixXd& exact);

struct GemmErrorConfig {
  int64_t m = 64, n = 64, k = 4096;
  Dist dist = Dist::kRandn;
  Format format = Format::kE4M3;
  bool tile_scaling = false;  // false: one scale per tensor; true: 1x128 (A) and 128x128 (B)
  GemmOptions gemm;
  uint64_t seed = 0;
};
// A [m, k] and B [n, k] from `dist` (seeds seed and seed + 1), quantized, multiplied.
ErrorStats gemm_error(const GemmErrorConfig& cfg);

}  // namespace dsv3::fp8
