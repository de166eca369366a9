#include "reference/fp8/panel.h"

#include <cmath>

#include "reference/fp8/gemm.h"
#include "reference/fp8/quant.h"

namespace dsv3::fp8 {

LayerFp8View analyze_layer(const RowVec& x, const Mat& w, const std::string& name) {
  LayerFp8View v;
  v.name = name;
  v.in_features = w.cols();
  v.out_features = w.rows();
  const Mat xm = x;  // [1, in]
  const QMatrix qx = quantize_activations(xm);
  const QMatrix qw = quantize_weights(w);
  for (int64_t t = 0; t < qx.scale_cols(); ++t) {
    v.tile_scales.push_back(qx.scales[static_cast<size_t>(t)]);
    const int64_t c0 = t * qx.tile_cols, n = std::min(qx.tile_cols, qx.cols - c0);
    v.tile_amax.push_back(n > 0 ? xm.block(0, c0, 1, n).cwiseAbs().maxCoeff() : 0.0f);
  }
  v.code_histogram.assign(16, 0);
  for (uint8_t c : qx.codes) ++v.code_histogram[(c >> 3) & 15];
  const double xn = xm.cast<double>().norm();
  v.quant_rel = xn > 0 ? (qx.dequantize() - xm).cast<double>().norm() / xn : 0.0;

  const Eigen::MatrixXd ref = (xm * w.transpose()).cast<double>();
  auto add = [&](std::string label, const QMatrix& a, const QMatrix& b, GemmOptions o) {
    const Eigen::MatrixXd exact = gemm_exact(a, b);
    const Eigen::MatrixXd y = gemm(a, b, o).cast<double>();
    AccumError e;
    e.label = std::move(label);
    const double en = exact.norm(), rn = ref.norm();
    e.accum_rel = en > 0 ? (y - exact).norm() / en : 0.0;
    e.total_rel = rn > 0 ? (y - ref).norm() / rn : 0.0;
    int64_t n = 0;
    for (int64_t j = 0; j < y.cols(); ++j) {
      if (exact(0, j) == 0.0) continue;
      e.mean_signed += (y(0, j) - exact(0, j)) / std::abs(exact(0, j));
      ++n;
    }
    if (n) e.mean_signed /= static_cast<double>(n);
    v.errors.push_back(std::move(e));
  };
  add("fp32", qx, qw, {Accum::kFp32, kTile});
  add("h100 N_C=32", qx, qw, {Accum::kH100, 32});
  add("h100 N_C=128", qx, qw, {Accum::kH100, kTile});
  // Without promotion the tile scales have nowhere to be applied: per-tensor scaling.
  add("h100 no promotion", quantize_per_tensor(xm), quantize_per_tensor(w), {Accum::kH100, 0});
  return v;
}

}  // namespace dsv3::fp8
