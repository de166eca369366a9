// What the explorer's FP8 panel shows for one token and one linear layer: the 1x128 activation
// tile scales, how the quantized values fill the E4M3 range, and the error each accumulation
// mode adds to y = x W^T (paper section 3.3.2: why N_C = 128 matters).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference/model/tensor.h"

namespace dsv3::fp8 {

struct AccumError {
  std::string label;  // "fp32", "h100 N_C=32", "h100 N_C=128", "h100 no promotion"
  double accum_rel =
      0;  // ||y - y_exact|| / ||y_exact||, y_exact: exact sum of the same FP8 products
  double total_rel = 0;  // ||y - x W^T|| / ||x W^T|| (float32 inputs): quantization + accumulation
  double mean_signed = 0;  // mean of (y - y_exact) / |y_exact|: negative = shrink toward zero
};

struct LayerFp8View {
  std::string name;  // checkpoint tensor name
  int64_t in_features = 0, out_features = 0;
  std::vector<float> tile_scales;  // the token's 1x128 activation tile scales
  std::vector<float> tile_amax;    // and the amax each came from
  // Quantized activation codes by E4M3 exponent field: [0] zero and subnormals, [e] = binade
  // 2^(e-7) for e = 1..15.
  std::vector<int64_t> code_histogram;
  double quant_rel = 0;  // ||dequant(q(x)) - x|| / ||x||
  std::vector<AccumError> errors;
};

// x: one token's input to the layer [in]; w: the weight [out, in] (nn.Linear layout).
LayerFp8View analyze_layer(const RowVec& x, const Mat& w, const std::string& name);

}  // namespace dsv3::fp8
