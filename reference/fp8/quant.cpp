#include "reference/fp8/quant.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dsv3::fp8 {

float tile_scale(float amax, const QuantOptions& opt) {
  const float s = std::max(amax, kMinAmax) / info(opt.format).max;
  return opt.ue8m0 ? ue8m0_decode(ue8m0_encode_ceil(s)) : s;
}

Mat QMatrix::dequantize() const {
  Mat out(rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out(r, c) = decode(code(r, c), format) * scale(r, c);
  }
  return out;
}

QMatrix quantize(const Mat& x, int64_t tile_rows, int64_t tile_cols, const QuantOptions& opt) {
  if (tile_rows < 1 || tile_cols < 1) throw std::invalid_argument("tile sizes must be >= 1");
  QMatrix q;
  q.format = opt.format;
  q.rows = x.rows();
  q.cols = x.cols();
  q.tile_rows = std::max<int64_t>(1, std::min(tile_rows, std::max<int64_t>(1, q.rows)));
  q.tile_cols = std::max<int64_t>(1, std::min(tile_cols, std::max<int64_t>(1, q.cols)));
  q.codes.resize(static_cast<size_t>(q.rows * q.cols));
  q.scales.resize(static_cast<size_t>(q.scale_rows() * q.scale_cols()));
  const int64_t sc = q.scale_cols();
#pragma omp parallel for schedule(static) if (q.rows * q.cols > 65536)
  for (int64_t tr = 0; tr < q.scale_rows(); ++tr) {
    const int64_t r0 = tr * q.tile_rows, r1 = std::min(q.rows, r0 + q.tile_rows);
    for (int64_t tc = 0; tc < sc; ++tc) {
      const int64_t c0 = tc * q.tile_cols, c1 = std::min(q.cols, c0 + q.tile_cols);
      float amax = 0.0f;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::abs(x(r, c)));
      }
      const float s = tile_scale(amax, opt);
      q.scales[static_cast<size_t>(tr * sc + tc)] = s;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) {
          q.codes[static_cast<size_t>(r * q.cols + c)] =
              encode(x(r, c) / s, opt.format, opt.overflow);
        }
      }
    }
  }
  return q;
}

QMatrix quantize_with_scale(const Mat& x, float scale, const QuantOptions& opt) {
  QMatrix q;
  q.format = opt.format;
  q.rows = x.rows();
  q.cols = x.cols();
  q.tile_rows = std::max<int64_t>(1, q.rows);
  q.tile_cols = std::max<int64_t>(1, q.cols);
  q.scales.assign(1, scale);
  q.codes.resize(static_cast<size_t>(q.rows * q.cols));
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      q.codes[static_cast<size_t>(r * q.cols + c)] =
          encode(x(r, c) / scale, opt.format, opt.overflow);
    }
  }
  return q;
}

QMatrix retile_128x1(const QMatrix& q, const QuantOptions& opt) {
  QuantOptions o = opt;
  o.format = q.format;
  return quantize(q.dequantize(), kTile, 1, o);
}

float DelayedScaling::scale() const {
  if (history_.empty()) return 1.0f;
  const float amax = *std::max_element(history_.begin(), history_.end());
  return std::ldexp(std::max(amax, kMinAmax), margin_) / info(opt_.format).max;
}

void DelayedScaling::record(float amax) {
  history_.push_back(amax);
  while (static_cast<int>(history_.size()) > history_len_) history_.pop_front();
}

QMatrix DelayedScaling::quantize_step(const Mat& x) {
  const float s = scale();
  QMatrix q = quantize_with_scale(x, s, opt_);
  const float fmax = info(opt_.format).max;
  for (int64_t i = 0; i < x.size(); ++i) {
    if (std::abs(x.data()[i]) / s > fmax) ++overflows_;
  }
  record(x.size() ? x.cwiseAbs().maxCoeff() : 0.0f);
  return q;
}

}  // namespace dsv3::fp8
