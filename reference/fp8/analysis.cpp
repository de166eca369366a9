#include "reference/fp8/analysis.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <vector>

namespace dsv3::fp8 {
namespace {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double uniform01(uint64_t& s) {
  return static_cast<double>(splitmix64(s) >> 11) * 0x1p-53;
}

}  // namespace

Dist parse_dist(std::string_view name) {
  if (name == "randn") return Dist::kRandn;
  if (name == "uniform") return Dist::kUniform;
  if (name == "randn+0.5") return Dist::kRandnPlusHalf;
  throw std::invalid_argument(
      fmt::format("unknown distribution '{}' (expected randn, uniform or randn+0.5)", name));
}

const char* to_string(Dist d) {
  switch (d) {
    case Dist::kRandn:
      return "randn";
    case Dist::kUniform:
      return "uniform";
    case Dist::kRandnPlusHalf:
      return "randn+0.5";
  }
  return "?";
}

Mat random_matrix(int64_t rows, int64_t cols, Dist dist, uint64_t seed) {
  Mat m(rows, cols);
  uint64_t s = seed * 0x2545F4914F6CDD1Dull + 1;
  float* p = m.data();
  const int64_t n = rows * cols;
  for (int64_t i = 0; i < n; ++i) {
    if (dist == Dist::kUniform) {
      p[i] = static_cast<float>(uniform01(s));
      continue;
    }
    // Box-Muller, one value per pair of uniforms (simple and reproducible).
    const double u1 = 1.0 - uniform01(s), u2 = uniform01(s);
    double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    if (dist == Dist::kRandnPlusHalf) z += 0.5;
    p[i] = static_cast<float>(z);
  }
  return m;
}

ErrorStats error_stats(const Mat& result, const Eigen::MatrixXd& exact) {
  if (result.rows() != exact.rows() || result.cols() != exact.cols()) {
    throw std::invalid_argument("error_stats: shapes differ");
  }
  ErrorStats st;
  double num = 0, den = 0, signed_sum = 0;
  std::vector<double> rel;
  rel.reserve(static_cast<size_t>(exact.size()));
  for (int64_t i = 0; i < exact.rows(); ++i) {
    for (int64_t j = 0; j < exact.cols(); ++j) {
      const double e = exact(i, j), d = static_cast<double>(result(i, j)) - e;
      num += d * d;
      den += e * e;
      if (e == 0.0) continue;
      rel.push_back(std::abs(d) / std::abs(e));
      signed_sum += d / std::abs(e);
    }
  }
  st.rel_fro = den > 0 ? std::sqrt(num / den) : 0.0;
  st.count = static_cast<int64_t>(rel.size());
  if (rel.empty()) return st;
  st.mean_signed_rel = signed_sum / static_cast<double>(rel.size());
  std::sort(rel.begin(), rel.end());
  st.max_rel = rel.back();
  auto quantile = [&](double q) {  // nearest rank
    const size_t idx = static_cast<size_t>(std::ceil(q * static_cast<double>(rel.size()))) - 1;
    return rel[std::min(idx, rel.size() - 1)];
  };
  st.p99_rel = quantile(0.99);
  st.median_rel = quantile(0.5);
  return st;
}

ErrorStats gemm_error(const GemmErrorConfig& cfg) {
  if (cfg.m < 1 || cfg.n < 1 || cfg.k < 1)
    throw std::invalid_argument("gemm-error: m, n, k must be >= 1");
  const Mat a = random_matrix(cfg.m, cfg.k, cfg.dist, cfg.seed);
  const Mat b = random_matrix(cfg.n, cfg.k, cfg.dist, cfg.seed + 1);
  QuantOptions qo;
  qo.format = cfg.format;
  const QMatrix qa = cfg.tile_scaling ? quantize_activations(a, qo) : quantize_per_tensor(a, qo);
  const QMatrix qb = cfg.tile_scaling ? quantize_weights(b, qo) : quantize_per_tensor(b, qo);
  const Eigen::MatrixXd exact = gemm_exact(qa, qb);
  return error_stats(gemm(qa, qb, cfg.gemm), exact);
}

}  // namespace dsv3::fp8
