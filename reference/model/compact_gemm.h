// Prefill on weights as the checkpoint stores them (issue 18): y = x W^T for many input rows
// without a float32 copy of the whole W, bit for bit the float32 model's GEMM.
//
// The float32 model multiplies x [T, K] by W^T (W [N, K]) with Eigen 3.4's GEMM
// (model::matmul_wt for T > 8). Eigen computes the row-major y as y^T = W x^T, column-major
// (GeneralMatrixMatrix.h), W being its left-hand side. It cuts K into blocks of kc; per block it
// packs a panel of W and a panel of x^T and calls its micro-kernel (gebp_kernel), which sums the
// block's products of each output from zero in registers and then adds that partial sum to the
// output: y = ((0 + P_0) + P_1) + ... over the K-blocks, in order. Inside gebp an output's
// arithmetic depends only on
//   * its K-block (length and position: the order of its products),
//   * the path its row n of W takes: W's rows go in panels of mr = 24 (three 8-float packets),
//     the last N mod 24 rows through smaller panels (16, 8, 4 rows, then one by one), each kind
//     of panel with its own order of additions (the 8- and 4-row ones sum even and odd k apart);
//   * the path of its token t: tokens go in groups of nr = 4, the last T mod 4 one by one.
// Eigen calls gebp on row ranges that start at multiples of mr (its row blocks and its threads'
// row slices are multiples of mr) and on token ranges that start at multiples of nr, so row n and
// token t take the same path in every call: 24-row panels for n < floor(N/24)*24, the tail panels
// after; 4-token groups for t < floor(T/4)*4. kc is Eigen's choice for the sizes and the thread
// count: computeProductBlockingSizes for one thread (the sequential GEMM: K split into equal
// blocks of at most ~ L1 / 112 bytes), initParallel's for several (min(L1-based, 320) rounded
// down to 8); parallelize_gemm decides which, from Eigen::nbThreads() and the sizes. So Eigen's
// float32 result itself can change with the thread count (K = 1000 here: kc 256 with one thread,
// 288 with two), and a K-slicing at any other kc (say at FP8's 128-column scale blocks) gives
// other bits.
//
// matmul_wt_kblocked takes the same K-blocks (eigen_gemm_plan asks Eigen's own blocking code),
// row ranges that start at multiples of 24 and token ranges that start at multiples of 4, and
// calls Eigen's own packing routines and gebp kernel on them (the same template instances): per
// K-block, x^T is packed once for all tokens and shared; each thread takes its share of W's
// panels, 192 rows at a time: the stored weights of that [192, kc] block decoded exactly (one
// rounding, the FP8 block scale; decode_block, kc need not be a multiple of 128) into a float32
// buffer, packed, multiplied into y. Every output sees the same products in the same order as in
// Eigen's GEMM on the dequantized W: the same bits, with one thread or several. The float32 part
// of W it holds is two [192, kc] buffers per thread (kc <= 320: at most 480 KB; 432 KB with this
// machine's kc = 288), whatever the matrix size; plus x^T packed (the size of x).
// Where Eigen would not take its GEMM (rows + columns + depth < 20, one output column, a blocking
// that breaks the multiples above, or an Eigen other than 3.4, whose internals this follows),
// eigen_gemm_plan says so and matmul_wt_kblocked multiplies by the whole dequantized W.
// Tests: CompactGemm.* (bit identity against x * W_f32^T over shapes, formats, thread counts).
#pragma once

#include <cstdint>

#include "reference/model/compact_linear.h"
#include "reference/model/tensor.h"

namespace dsv3::model {

// How Eigen's float32 GEMM y = x W^T would run for x [T, K], W [N, K] in this thread, as far as
// its results depend on it.
struct EigenGemmPlan {
  // Whether Eigen takes its blocked GEMM and matmul_wt_kblocked can follow it bit for bit.
  bool gemm = false;
  int threads = 1;  // the threads Eigen's GEMM asks for (1: its sequential form)
  int64_t kc = 0;   // K-block depth: [0, kc), [kc, 2 kc), .., the last one shorter
  int64_t mr = 0;   // W rows per register panel (24 with AVX's 8-float packets)
  int64_t nr = 0;   // tokens per register panel (4)
};
EigenGemmPlan eigen_gemm_plan(int64_t T, int64_t N, int64_t K);

struct KBlockedOptions {
  int64_t block_rows = 192;  // W rows decoded and packed at a time (rounded up to a multiple of mr)
};

// y = x W^T for x [T, K] and compact W [N, K], K-block by K-block as Eigen's GEMM on the
// dequantized W (see above): bit-identical to model::matmul_wt(x, w.to_f32_reference()) when
// eigen_gemm_plan(T, N, K).gemm; otherwise it multiplies by the whole dequantized W (with
// Eigen 3.4 that happens for tiny products only: rows + columns + depth < 20, or N == 1).
// Counts one read of the whole W.
Mat matmul_wt_kblocked(const Mat& x, const CompactMatrix& w, const KBlockedOptions& opt = {});

// The form matmul_wt(x, CompactMatrix) takes for more than 8 input rows: K-blocked (the
// default), or the whole W dequantized into float32, then Eigen's GEMM (the first form, kept so
// that bench_weights measures both in one run). The same bits either way; process-wide.
enum class PrefillForm { kKBlocked, kWholeF32 };
void set_prefill_form(PrefillForm f);
PrefillForm prefill_form();

// Decodes W[r0 .. r0 + rows, c0 .. c1) into out (row-major, row stride ld >= c1 - c0), exactly
// (the scalar decoders of the loader, times the FP8 block scale: one rounding); vectorised.
void decode_block(const CompactMatrix& w, int64_t r0, int64_t rows, int64_t c0, int64_t c1,
                  float* out, int64_t ld);

}  // namespace dsv3::model
