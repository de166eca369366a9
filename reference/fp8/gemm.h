// FP8 GEMM emulation with selectable accumulation (paper section 3.3.2 "Increasing Accumulation
// Precision", section 3.5.2). The "h100" mode is the block-FMA model of the Hopper FP8 tensor core
// that matched H100 wgmma results bit for bit (tests/data/fp8/h100_dot_cases.txt): per k-slice of
// 32 products, every product is aligned to 13 fraction bits below the largest exponent
// (E(a)+E(b) over the slice and the incoming accumulator), truncated toward zero, summed exactly,
// and the sum truncated toward zero to 13 fraction bits. Every N_C elements the partial sum is
// promoted into an FP32 accumulator on the CUDA cores, with the tiles' scales applied there.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <span>
#include <string_view>

#include "reference/fp8/format.h"
#include "reference/fp8/quant.h"
#include "reference/model/tensor.h"

namespace dsv3::fp8 {

enum class Accum {
  kExact,  // exact sum of the scaled FP8 products (integer per scaling group, then double)
  kFp32,   // sequential float32 accumulation per scaling group, FFMA with the scales
  kH100,   // Hopper tensor-core model with promotion every `promote` elements
};
Accum parse_accum(std::string_view name);  // "exact" | "fp32" | "h100"
const char* to_string(Accum a);

struct GemmOptions {
  Accum accum = Accum::kH100;
  // N_C: promote the tensor-core partial sum to FP32 every `promote` K-elements (a multiple of
  // 32; DeepSeek-V3 uses 128). 0 = never: one tensor-core chain over all of K, as with
  // cuBLAS fast accumulation. Only the h100 mode uses it.
  int promote = kTile;
};

// One tensor-core dot product on FP8 codes, as Triton's tl.dot / wgmma computes it: `c` is the
// incoming FP32 accumulator. promote = 0: c enters the tensor-core chain (and is truncated to
// 13 fraction bits); promote = N: out = c, and every N products out = fp32(out + partial).
float tc_dot(std::span<const uint8_t> a, Format fa, std::span<const uint8_t> b, Format fb,
             float c = 0.0f, int promote = 0);

// One k-slice (at most 32 products) of the tensor-core model, chained from accumulator c.
float tc_slice(std::span<const uint8_t> a, Format fa, std::span<const uint8_t> b, Format fb,
               float c);

// y = x w^T from FP8 operands: x [M, K] (e.g. 1x128 activation tiles), w [N, K] (e.g. 128x128
// weight blocks) -> [M, N] float32. When a scale varies along K, it is applied at promotion
// (DeepGEMM: out = fma(s_x * s_w, partial, out)), so every promotion block must lie inside one
// scaling group; scales constant along K are applied once at the end.
// Throws std::invalid_argument on shape mismatch or an N_C that straddles scaling groups.
Mat gemm(const QMatrix& x, const QMatrix& w, const GemmOptions& opt = {});

// The exact product sums as doubles [M, N] (error reference for every mode).
Eigen::MatrixXd gemm_exact(const QMatrix& x, const QMatrix& w);

}  // namespace dsv3::fp8
