// FP8 mixed-precision training of the linear layers (paper section 3.3, Fig. 6 and 7): the
// three GEMMs of a Linear, y = x W^T, run in FP8 through the emulated Hopper tensor core
// (reference/fp8/gemm.h, bit-exact), with DeepSeek-V3's fine-grained online scaling:
//
//   GEMM    formula        inner dim K          operands (gemm form y = a b^T)
//   Fprop   y  = x W^T     input channels       a = x  [N, in]   1 x g tiles; b = W  [out, in] g x
//   g Dgrad   dx = dy W      output channels      a = dy [N, out]  1 x g tiles; b = W^T [in, out] g
//   x g Wgrad   dW = dy^T x    tokens               a = dy^T [out,N] 1 x g (dy in g x 1 tiles);
//                                               b = x^T  [in, N] 1 x g (x  in g x 1 tiles)
//
// g = 128 in the paper (kTile); at tiny widths one 128 tile covers a whole row, so g is an
// option. Accumulation is the H100 model with promotion to FP32 every N_C elements, where the
// tiles' scales are applied (one FFMA, as DeepGEMM). Fprop and Dgrad write BF16, Wgrad FP32.
// The Wgrad input x is the forward's cached FP8 tensor, dequantized and re-quantized in g x 1
// tiles (section 3.5.2); the input of the Linear after attention is cached in E5M6 instead.
//
// Also here: the BF16 baseline of the same GEMMs (operands rounded to BF16, FP32 accumulation)
// and the SwiGLU with FP8-cached inputs and recomputed output (section 3.3.3).
#pragma once

#include <cstdint>
#include <string>

#include "reference/fp8/gemm.h"
#include "reference/fp8/quant.h"
#include "reference/model/tensor.h"
#include "reference/train/ops.h"

namespace dsv3::train {

// fp32: every GEMM in float32 (the trainer as it was); bf16: the FP8-eligible GEMMs on BF16
// operands; fp8: those GEMMs in FP8 (DeepSeek-V3's recipe).
enum class Precision { kFp32, kBf16, kFp8 };
Precision parse_precision(const std::string& s);  // throws std::invalid_argument
const char* to_string(Precision p);

struct LowPrecision {
  Precision precision = Precision::kFp32;
  // Scaling group g: 1 x g activation tiles, g x g weight blocks, g x 1 tiles for Wgrad.
  // A multiple of 32 (one wgmma k-slice).
  int tile = fp8::kTile;
  bool per_tensor = false;  // ablation: one scale per tensor (Transformer Engine style)
  // N_C: promote every `promote` K-elements (a multiple of 32; 0 = never, the whole K in the
  // tensor core's accumulator). Per-tile scales are applied at promotion, so with tiles the
  // effective interval is min(promote, g), and no promotion needs per-tensor scaling.
  int promote = fp8::kTile;
  fp8::Format grad_format = fp8::Format::kE4M3;  // ablation: E5M2 for dy (the hybrid format)
  // Ablation (App. B.2): Dgrad's dy in g x g blocks instead of 1 x g tiles, the setting that
  // made a 16B MoE model diverge (token-correlated outliers in the activation gradients).
  bool dgrad_blocks = false;
  bool bf16_output = true;  // Fprop and Dgrad write BF16 (DeepGEMM)

  bool fp8() const { return precision == Precision::kFp8; }
  bool scaled_per_tensor() const { return per_tensor || promote == 0; }
  int nc() const;  // the promotion interval the GEMMs use (0 = never)
  // "fp32", "bf16", "fp8 g=128 N_C=128 E4M3", "fp8 per-tensor no-promotion E5M2-grad",
  // "fp8 g=32 N_C=32 E4M3 block-Dgrad", ...
  std::string describe() const;
  // Throws std::invalid_argument on a tile or N_C that is not a positive multiple of 32.
  void validate() const;
};

// How the Wgrad input x was cached by the forward pass.
enum class Cached {
  kFp8,   // E4M3 in 1 x g tiles (every Linear but one)
  kE5M6,  // E5M6 with power-of-two scales (the Linear after attention, section 3.3.3)
};

// ---- The quantizers, as the GEMMs use them (E4M3 unless the format says otherwise) -----------
fp8::QMatrix quantize_rows(const Mat& x, const LowPrecision& p, fp8::Format f);  // 1 x g tiles
fp8::QMatrix quantize_blocks(const Mat& w, const LowPrecision& p);               // g x g blocks
// Dgrad's dy [N, out] in p.grad_format: 1 x g tiles, or g x g blocks with p.dgrad_blocks.
fp8::QMatrix quantize_dgrad_dy(const Mat& dy, const LowPrecision& p);
// The forward's 1 x g tiles dequantized and re-quantized in g x 1 tiles (the same format).
fp8::QMatrix retile_columns(const fp8::QMatrix& q, const LowPrecision& p);
// q^T: codes transposed, tiles and scales with them.
fp8::QMatrix transpose(const fp8::QMatrix& q);
fp8::GemmOptions gemm_options(const LowPrecision& p);

// E5M6: 1 sign, 5 exponent (bias 15, as E5M2 and binary16), 6 mantissa bits, subnormals,
// round to nearest even, saturating at (2 - 2^-6) * 2^15 = 65024. The paper gives no bias or
// special values; these are assumptions. With a power-of-two scale per 1 x g tile mapping the
// tile's amax into range, it keeps 7 significant bits of every element.
float e5m6_round(float x);
Mat e5m6_cache(const Mat& x, const LowPrecision& p);  // dequantized: what the backward reads

// ---- The three GEMMs ----------------------------------------------------------------------
Mat fp8_fprop(const Mat& x, const Mat& w, const LowPrecision& p);
Mat fp8_dgrad(const Mat& dy, const Mat& w, const LowPrecision& p);
// x_cached: the forward's input as cached (see Cached); dW = dy^T x, FP32.
Mat fp8_wgrad(const Mat& dy, const Mat& x, const LowPrecision& p, Cached cached = Cached::kFp8);

// ---- A Linear in the chosen precision (p.precision != kFp32) ------------------------------
Mat lp_linear_fwd(const Mat& x, const Mat& w, const LowPrecision& p);
// dx += Dgrad (dx may be null), dW += Wgrad.
void lp_linear_bwd(const Mat& x, const Mat& w, const Mat& dy, Mat* dx, Mat& dw,
                   const LowPrecision& p, Cached cached = Cached::kFp8);

// SwiGLU with the three Linears in the chosen precision. In fp8 mode the cache holds the
// SwiGLU inputs a = W1 x and b = W3 x as FP8 (1 x g tiles, dequantized), and the backward
// recomputes h = silu(a) * b from them (section 3.3.3).
Mat lp_swiglu_fwd(const Mat& x, const Mat& w1, const Mat& w3, const Mat& w2,
                  SwigluCache<float>& cache, const LowPrecision& p);
void lp_swiglu_bwd(const Mat& x, const Mat& w1, const Mat& w3, const Mat& w2,
                   const SwigluCache<float>& cache, const Mat& dy, Mat& dx, Mat& dw1, Mat& dw3,
                   Mat& dw2, const LowPrecision& p);

}  // namespace dsv3::train
