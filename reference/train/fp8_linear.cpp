#include "reference/train/fp8_linear.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "reference/fp8/format.h"

namespace dsv3::train {

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::kFp32;
  if (s == "bf16") return Precision::kBf16;
  if (s == "fp8") return Precision::kFp8;
  throw std::invalid_argument(
      fmt::format("unknown precision '{}' (expected fp32, bf16 or fp8)", s));
}

const char* to_string(Precision p) {
  switch (p) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp8:
      return "fp8";
  }
  return "?";
}

int LowPrecision::nc() const {
  if (promote == 0) return 0;
  return scaled_per_tensor() ? promote : std::min(promote, tile);
}

void LowPrecision::validate() const {
  if (tile < 32 || tile % 32 != 0)
    throw std::invalid_argument(fmt::format(
        "FP8 tile size {} must be a positive multiple of 32 (one wgmma k-slice)", tile));
  if (promote < 0 || promote % 32 != 0)
    throw std::invalid_argument(
        fmt::format("promotion interval N_C = {} must be 0 (never) or a multiple of 32", promote));
  if (!scaled_per_tensor() && promote < tile && tile % promote != 0)
    throw std::invalid_argument(fmt::format(
        "promotion interval N_C = {} must divide the tile size {} (scales apply at promotion)",
        promote, tile));
}

std::string LowPrecision::describe() const {
  if (precision != Precision::kFp8) return to_string(precision);
  std::string s = scaled_per_tensor() ? "fp8 per-tensor" : fmt::format("fp8 g={}", tile);
  s += nc() == 0 ? " no-promotion" : fmt::format(" N_C={}", nc());
  s += grad_format == fp8::Format::kE5M2 ? " E5M2-grad" : " E4M3";
  if (dgrad_blocks && !scaled_per_tensor()) s += " block-Dgrad";
  return s;
}

// ---- Quantizers ---------------------------------------------------------------------------

namespace {

fp8::QMatrix quantize_tiles(const Mat& x, int64_t tr, int64_t tc, const LowPrecision& p,
                            fp8::Format f) {
  fp8::QuantOptions o;
  o.format = f;
  if (p.scaled_per_tensor()) return fp8::quantize(x, x.rows(), x.cols(), o);
  return fp8::quantize(x, tr, tc, o);
}

Mat bf16_round(const Mat& x) {
  return x.unaryExpr([](float v) { return fp8::bf16_round(v); });
}

Mat maybe_bf16(Mat y, const LowPrecision& p) {
  return p.bf16_output ? bf16_round(y) : y;
}

}  // namespace

fp8::QMatrix quantize_rows(const Mat& x, const LowPrecision& p, fp8::Format f) {
  return quantize_tiles(x, 1, p.tile, p, f);
}

fp8::QMatrix quantize_blocks(const Mat& w, const LowPrecision& p) {
  return quantize_tiles(w, p.tile, p.tile, p, fp8::Format::kE4M3);
}

fp8::QMatrix quantize_dgrad_dy(const Mat& dy, const LowPrecision& p) {
  return p.dgrad_blocks ? quantize_tiles(dy, p.tile, p.tile, p, p.grad_format)
                        : quantize_rows(dy, p, p.grad_format);
}

fp8::QMatrix retile_columns(const fp8::QMatrix& q, const LowPrecision& p) {
  return quantize_tiles(q.dequantize(), p.tile, 1, p, q.format);
}

fp8::QMatrix transpose(const fp8::QMatrix& q) {
  fp8::QMatrix t;
  t.format = q.format;
  t.rows = q.cols;
  t.cols = q.rows;
  t.tile_rows = q.tile_cols;
  t.tile_cols = q.tile_rows;
  t.codes.resize(q.codes.size());
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c)
      t.codes[static_cast<size_t>(c * t.cols + r)] = q.code(r, c);
  t.scales.resize(q.scales.size());
  const int64_t sr = q.scale_rows(), sc = q.scale_cols();
  for (int64_t r = 0; r < sr; ++r)
    for (int64_t c = 0; c < sc; ++c)
      t.scales[static_cast<size_t>(c * sr + r)] = q.scales[static_cast<size_t>(r * sc + c)];
  return t;
}

fp8::GemmOptions gemm_options(const LowPrecision& p) {
  return {fp8::Accum::kH100, p.nc()};
}

float e5m6_round(float x) {
  if (!std::isfinite(x) || x == 0.0f) return x;
  constexpr int kMant = 6, kEmin = 1 - 15;
  constexpr double kMax = (2.0 - 1.0 / 64.0) * 32768.0;  // 65024
  const double a = std::abs(static_cast<double>(x));
  const int e = std::max(std::ilogb(a), kEmin);  // subnormals share the quantum of 2^-14
  const double q = std::ldexp(1.0, e - kMant);
  const double r = std::min(std::nearbyint(a / q) * q, kMax);  // ties to even (default mode)
  return static_cast<float>(std::copysign(r, static_cast<double>(x)));
}

Mat e5m6_cache(const Mat& x, const LowPrecision& p) {
  // Power-of-two scale per 1 x g tile: the smallest 2^k with amax / 2^k <= 65024 (exact scaling).
  const int64_t g = p.scaled_per_tensor() ? std::max<int64_t>(1, x.cols()) : p.tile;
  Mat out(x.rows(), x.cols());
  const int64_t rows_per = p.scaled_per_tensor() ? std::max<int64_t>(1, x.rows()) : 1;
  for (int64_t r0 = 0; r0 < x.rows(); r0 += rows_per)
    for (int64_t c0 = 0; c0 < x.cols(); c0 += g) {
      const int64_t nr = std::min(rows_per, x.rows() - r0), nc = std::min(g, x.cols() - c0);
      const float amax = std::max(x.block(r0, c0, nr, nc).cwiseAbs().maxCoeff(), fp8::kMinAmax);
      const float s = std::ldexp(1.0f, static_cast<int>(std::ceil(std::log2(amax / 65024.0f))));
      for (int64_t r = r0; r < r0 + nr; ++r)
        for (int64_t c = c0; c < c0 + nc; ++c) out(r, c) = e5m6_round(x(r, c) / s) * s;
    }
  return out;
}

// ---- GEMMs --------------------------------------------------------------------------------

Mat fp8_fprop(const Mat& x, const Mat& w, const LowPrecision& p) {
  const fp8::QMatrix a = quantize_rows(x, p, fp8::Format::kE4M3);  // x [N, in], 1 x g
  const fp8::QMatrix b = quantize_blocks(w, p);                    // W [out, in], g x g
  return maybe_bf16(fp8::gemm(a, b, gemm_options(p)), p);          // y [N, out]
}

Mat fp8_dgrad(const Mat& dy, const Mat& w, const LowPrecision& p) {
  const fp8::QMatrix a = quantize_dgrad_dy(dy, p);  // dy [N, out], 1 x g (or g x g blocks)
  // W^T [in, out] in g x g blocks: the same blocks as W's, transposed.
  const fp8::QMatrix b = quantize_blocks(w.transpose(), p);
  return maybe_bf16(fp8::gemm(a, b, gemm_options(p)), p);  // dx [N, in]
}

Mat fp8_wgrad(const Mat& dy, const Mat& x, const LowPrecision& p, Cached cached) {
  // Inner dimension: tokens. dy and x in g x 1 tiles (g tokens x 1 channel), transposed so
  // that the tokens run along K.
  const fp8::QMatrix dyq = quantize_tiles(dy, p.tile, 1, p, p.grad_format);  // [N, out]
  const fp8::QMatrix xq =
      cached == Cached::kE5M6
          ? quantize_tiles(e5m6_cache(x, p), p.tile, 1, p, fp8::Format::kE4M3)
          : retile_columns(quantize_rows(x, p, fp8::Format::kE4M3), p);  // [N, in]
  return fp8::gemm(transpose(dyq), transpose(xq), gemm_options(p));      // dW [out, in]
}

// ---- Linear -------------------------------------------------------------------------------

Mat lp_linear_fwd(const Mat& x, const Mat& w, const LowPrecision& p) {
  if (p.fp8()) return fp8_fprop(x, w, p);
  if (p.precision == Precision::kBf16)  // BF16 operands, float32 accumulation (Eigen's order)
    return maybe_bf16(bf16_round(x) * bf16_round(w).transpose(), p);
  return linear_fwd(x, w);
}

void lp_linear_bwd(const Mat& x, const Mat& w, const Mat& dy, Mat* dx, Mat& dw,
                   const LowPrecision& p, Cached cached) {
  if (x.rows() == 0) return;
  if (p.fp8()) {
    dw += fp8_wgrad(dy, x, p, cached);
    if (dx) *dx += fp8_dgrad(dy, w, p);
    return;
  }
  if (p.precision == Precision::kBf16) {
    const Mat dyb = bf16_round(dy);
    dw.noalias() += dyb.transpose() * bf16_round(x);
    if (dx) *dx += maybe_bf16(dyb * bf16_round(w), p);
    return;
  }
  linear_bwd(x, w, dy, dx, dw);
}

// ---- SwiGLU -------------------------------------------------------------------------------

namespace {
Mat silu(const Mat& a) {
  return a.unaryExpr([](float v) { return v / (1.0f + std::exp(-v)); });
}
}  // namespace

Mat lp_swiglu_fwd(const Mat& x, const Mat& w1, const Mat& w3, const Mat& w2,
                  SwigluCache<float>& cache, const LowPrecision& p) {
  Mat a = lp_linear_fwd(x, w1, p);  // [N, inter]
  Mat b = lp_linear_fwd(x, w3, p);  // [N, inter]
  Mat y = lp_linear_fwd(silu(a).cwiseProduct(b), w2, p);
  if (p.fp8()) {  // the SwiGLU inputs are cached in FP8 (section 3.3.3)
    cache.a = quantize_rows(a, p, fp8::Format::kE4M3).dequantize();
    cache.b = quantize_rows(b, p, fp8::Format::kE4M3).dequantize();
  } else {
    cache.a = std::move(a);
    cache.b = std::move(b);
  }
  return y;  // [N, d]
}

void lp_swiglu_bwd(const Mat& x, const Mat& w1, const Mat& w3, const Mat& w2,
                   const SwigluCache<float>& cache, const Mat& dy, Mat& dx, Mat& dw1, Mat& dw3,
                   Mat& dw2, const LowPrecision& p) {
  const Mat& a = cache.a;
  const Mat& b = cache.b;
  const Mat sig = a.unaryExpr([](float v) { return 1.0f / (1.0f + std::exp(-v)); });  // σ(a)
  const Mat sa = a.cwiseProduct(sig);
  const Mat h = sa.cwiseProduct(b);  // recomputed from the cached inputs (§3.3.3)
  Mat dh = Mat::Zero(a.rows(), a.cols());
  lp_linear_bwd(h, w2, dy, &dh, dw2, p);
  const Mat db = dh.cwiseProduct(sa);  // δb = δh ⊙ silu(a)
  const Mat da = dh.cwiseProduct(b).cwiseProduct(
      sig.cwiseProduct((a.array() * (1.0f - sig.array()) + 1.0f).matrix()));
  lp_linear_bwd(x, w1, da, &dx, dw1, p);
  lp_linear_bwd(x, w3, db, &dx, dw3, p);
}

}  // namespace dsv3::train
