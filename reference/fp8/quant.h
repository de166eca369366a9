// DeepSeek-V3 fine-grained FP8 quantization (paper section 3.3.2, Fig. 7a): activations scaled per
// token per 128 channels (1x128 tiles), weights per 128x128 block, one float32 scale per tile,
// computed online from the tile's own amax. Per-tensor and delayed (amax-history) scaling are
// here too, as the baselines the paper argues against.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "reference/fp8/format.h"
#include "reference/model/tensor.h"

namespace dsv3::fp8 {

inline constexpr int kTile = 128;         // N_C and the scaling group size of the paper
inline constexpr float kMinAmax = 1e-4f;  // keeps all-zero tiles finite (DeepGEMM clamp)

struct QuantOptions {
  Format format = Format::kE4M3;
  bool ue8m0 = false;                       // round each scale up to a power of two
  Overflow overflow = Overflow::kSaturate;  // only reachable with stale (delayed) scales
};

// An FP8 matrix: codes [rows, cols] plus one dequantization scale per tile_rows x tile_cols tile
// (value = decode(code) * scale). Per-tensor scaling is the tile [rows, cols].
struct QMatrix {
  Format format = Format::kE4M3;
  int64_t rows = 0, cols = 0;
  int64_t tile_rows = 1, tile_cols = kTile;
  std::vector<uint8_t> codes;  // [rows, cols] row-major
  std::vector<float> scales;   // [scale_rows(), scale_cols()] row-major

  int64_t scale_rows() const { return (rows + tile_rows - 1) / tile_rows; }
  int64_t scale_cols() const { return (cols + tile_cols - 1) / tile_cols; }
  uint8_t code(int64_t r, int64_t c) const { return codes[static_cast<size_t>(r * cols + c)]; }
  float scale(int64_t r, int64_t c) const {
    return scales[static_cast<size_t>((r / tile_rows) * scale_cols() + c / tile_cols)];
  }
  Mat dequantize() const;  // [rows, cols] float32: decode(code) * scale, one rounding
};

// Dequantization scale for a tile: max(amax, 1e-4) / fmax in float32; with ue8m0 the smallest
// power of two at or above it (so |x| / scale <= fmax still holds).
float tile_scale(float amax, const QuantOptions& opt = {});

// encode(v, f, Overflow::kSaturate) by branch-free integer rounding: what quantize's inner loop
// runs with the saturating policy (the general encode() stays the definition).
uint8_t encode_fast(float v, Format f);

// Quantizes with tiles of tile_rows x tile_cols: code = encode(x / scale). The element attaining
// a tile's amax lands on +-fmax exactly (without ue8m0).
QMatrix quantize(const Mat& x, int64_t tile_rows, int64_t tile_cols, const QuantOptions& opt = {});
inline QMatrix quantize_activations(const Mat& x, const QuantOptions& opt = {}) {  // x [T, d]
  return quantize(x, 1, kTile, opt);
}
inline QMatrix quantize_weights(const Mat& w, const QuantOptions& opt = {}) {  // w [out, in]
  return quantize(w, kTile, kTile, opt);
}
inline QMatrix quantize_per_tensor(const Mat& x, const QuantOptions& opt = {}) {
  return quantize(x, x.rows(), x.cols(), opt);
}
// Every element with one given scale (delayed scaling): values above scale * fmax overflow.
QMatrix quantize_with_scale(const Mat& x, float scale, const QuantOptions& opt = {});

// The backward pass needs the cached 1x128 activation tiles as 128x1 tiles (Wgrad reduces over
// tokens): dequantize and requantize per 128 tokens per channel (paper section 3.5.2).
QMatrix retile_128x1(const QMatrix& q, const QuantOptions& opt = {});

// Transformer Engine style delayed scaling: the scale for this step comes from the amax
// history of previous steps (max over the window), scale = amax_hist * 2^margin / fmax.
class DelayedScaling {
 public:
  explicit DelayedScaling(int history_len = 1024, int margin = 0, QuantOptions opt = {})
      : history_len_(history_len), margin_(margin), opt_(opt) {}
  // Scale to use now (1.0 before any history); then record this step's amax.
  float scale() const;
  void record(float amax);
  // Quantizes x with the current scale, records x's amax, returns the result.
  QMatrix quantize_step(const Mat& x);
  int overflows() const { return overflows_; }  // elements beyond fmax so far (saturated or NaN)

 private:
  int history_len_;
  int margin_;
  QuantOptions opt_;
  std::deque<float> history_;
  int overflows_ = 0;
};

}  // namespace dsv3::fp8
