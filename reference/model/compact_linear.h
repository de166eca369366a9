// Weight matrices kept as the checkpoint stores them, and the products that dequantize them
// inside the multiplication (issue 18).
//
// The released DeepSeek-V3 checkpoint stores every projection as FP8 E4M3 with a float32
// `weight_scale_inv` per 128x128 block (model_spec §2, §9: W[r, c] = float(q[r, c]) *
// scale_inv[r / 128, c / 128], edge blocks partial), and the embedding, head, router and norms as
// BF16. A CompactMatrix points at those bytes (in a mapped file, or in memory it owns) and turns
// them into float32 only a row or a block at a time, inside the product.
//
// Two forms of every product sit side by side, as everywhere in this project:
//   * the plain reference: dequantize the whole matrix to float32 (to_f32_reference, one scalar
//     decode per element, the same formula as io::Checkpoint::matrix), then multiply;
//   * the compact form: matmul_wt(x, CompactMatrix), which never holds more than one row of W in
//     float32 for few-row inputs. It gives bit-identical results to the reference because each
//     row is decoded exactly (one rounding: the scale multiply) and then summed with the same
//     Eigen dot product as model::matmul_wt. For many input rows (prefill) it holds one
//     [192, kc] block of W per thread in float32 and runs Eigen's own GEMM kernel on it, K-block
//     by K-block as Eigen's GEMM does (compact_gemm.h), so again the same bits.
// fused_matvec is a third, faster form for decode (one input row): it dequantizes 8 weights at a
// time in registers and never writes a float32 row; its summation order is fixed (documented
// below) and reproduced exactly by fused_matvec_reference.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reference/model/tensor.h"

namespace dsv3::model {

// How a matrix is stored. kFP8 is E4M3 "fn" (bias 7, max 448, 0x7F/0xFF NaN) with 128x128 blocks.
enum class WeightFormat { kF32, kBF16, kF16, kFP8 };
const char* to_string(WeightFormat f);
size_t element_bytes(WeightFormat f);  // 4, 2, 2, 1

// W [rows, cols], row-major, in its storage format. Cheap to copy (it is a view plus an owner).
struct CompactMatrix {
  WeightFormat format = WeightFormat::kF32;
  int64_t rows = 0, cols = 0;
  const uint8_t* data = nullptr;  // rows * cols elements; any alignment
  // FP8 only: scale_inv [ceil(rows/128), ceil(cols/128)] row-major (a copy: 1/16384 of the
  // weight's elements, and float32 reads need an alignment the file does not promise).
  std::vector<float> scale_inv;
  std::shared_ptr<const void> owner;  // keeps `data` alive (a mapped checkpoint or a buffer)
  // Bytes of this matrix the products have read (a whole pass counts nbytes(), row() a row):
  // what a token touches, for the touched-bytes report and its test. Shared by copies.
  std::shared_ptr<std::atomic<uint64_t>> reads = std::make_shared<std::atomic<uint64_t>>(0);
  // FP8 only: whether `data` holds an E4M3 NaN code (0x7F, 0xFF), learnt by the first product
  // that reads every row (the fast decoder takes only rows without one): kUnknown, kNone, kSome.
  enum NanCodes : int { kUnknown, kNone, kSome };
  std::shared_ptr<std::atomic<int>> nan_codes = std::make_shared<std::atomic<int>>(kUnknown);

  int64_t scale_cols() const { return (cols + 127) / 128; }
  size_t nbytes() const;  // bytes of the weight itself, scales included

  // Dequantizes row r into out[0 .. cols): vectorised, exact (bit-identical to the reference).
  void row(int64_t r, float* out) const;
  // row() without counting the read (inside a product that counts its whole pass).
  void decode_row(int64_t r, float* out) const;
  void count_read(uint64_t bytes) const { reads->fetch_add(bytes, std::memory_order_relaxed); }
  uint64_t bytes_read() const { return reads->load(std::memory_order_relaxed); }
  // The whole matrix in float32, row by row through row() ([rows, cols]).
  Mat to_f32() const;
  // The plain reference: one scalar decode per element (io::*_to_f32), then the block scale.
  Mat to_f32_reference() const;
};

// A compact matrix that owns its bytes: a copy of `bytes` ([rows, cols] in format f) and, for
// FP8, of the block scales. For tests, benches and random models.
CompactMatrix make_compact(WeightFormat f, int64_t rows, int64_t cols, std::vector<uint8_t> bytes,
                           std::vector<float> scale_inv = {});
// A float32 matrix as a compact F32 matrix (a copy).
CompactMatrix compact_f32(const Mat& w);

// y = x W^T for x [T, in] and compact W [out, in]. Bit-identical to model::matmul_wt(x,
// w.to_f32_reference()): for T <= 8 each weight row is decoded once into a float32 row and
// dotted with every input row; for more rows, Eigen's GEMM K-block by K-block with W decoded one
// [192, kc] block at a time (matmul_wt_kblocked, compact_gemm.h: the same bits as Eigen's GEMM on
// the dequantized W, with any thread count).
Mat matmul_wt(const Mat& x, const CompactMatrix& w);
// The first prefill form without a float32 copy of the whole W: W dequantized block_rows rows at
// a time into one float32 slice, each slice multiplied by Eigen's GEMM into its columns of y.
// NOT bit-identical to one GEMM over the whole W (Eigen's GEMM picks its K-blocks from the
// sizes, here the slice's), and slow (x packed again for every slice); kept for comparison, the
// K-blocked form (compact_gemm.h) replaced it in matmul_wt. Each output is within the
// dot-product bound gamma_in * sum_i |W[o,i] x[i]| of the exact sum, as the one-GEMM result is
// (test CompactLinear.PrefillBlockByBlockIsWithinTheDotProductBound).
Mat matmul_wt_blocked(const Mat& x, const CompactMatrix& w, int64_t block_rows = 256);
// The plain reference of the above: dequantize everything, then the float32 product.
Mat matmul_wt_reference(const Mat& x, const CompactMatrix& w);

// y = W x for one input row x [in], y [out], summed in Eigen's order for a float32 dot product
// (dot_eigen_order_reference), so bit-identical to model::matmul_wt on the dequantized W. The
// stored weights are decoded 8 at a time in registers (FP8 in four instructions, see
// compact_linear.cpp) and never written out; 4 rows at a time share the loads of x. matmul_wt
// takes this form for one input row (decode).
void matvec_eigen_order(const CompactMatrix& w, const float* x, float* y);
// y = W x for a float32 W [rows, cols] (row-major, contiguous) and x [cols] on one thread: y[o]
// is Eigen's float dot of W's row o with x (model::matmul_wt's order), allocating nothing. The
// float32 model's decode product; compiled here rather than in model.cpp, where GCC left Eigen's
// reduction out of line (tiny's step: 137 against 122 us). The in-register kernel above, in the
// same order with 4 rows sharing x, was slower in the model (tiny 130 us, small 20 ms against 16).
void matvec_f32(const float* w, int64_t rows, int64_t cols, const float* x, float* y);
// The form matmul_wt takes for one input row: in registers (matvec_eigen_order, the default), or
// each weight row decoded into float32 and then Eigen's dot (the first form, kept so that
// bench_weights measures both in one run). The same bits either way; process-wide.
enum class MatvecForm { kInRegisters, kRowDecoded };
void set_matvec_form(MatvecForm f);
// The plain form of that order: Eigen 3.4's sum of a dynamic-size float dot product with 8-lane
// AVX packets (Redux.h, linear vectorised traversal). With n8 = floor(n/8) packets
// P_k = a[8k..8k+8) * b[8k..8k+8) (lane-wise, rounded): acc0 = P_0, acc1 = P_1, then in pairs
// acc0 += P_k, acc1 += P_{k+1} (k = 2, 4, .. while k+1 < n8), acc0 += acc1, acc0 += P_{n8-1}
// when n8 is odd; then the lanes ((0+4) + (2+6)) + ((1+5) + (3+7)); then the last n % 8 products
// one by one. Fewer than 8: a[0]b[0], then the rest one by one. The test
// CompactLinear.EigenOrderReferenceIsEigensDot holds Eigen to it.
float dot_eigen_order_reference(const float* a, const float* b, int64_t n);

// Decode form for one input row: y[o] = sum_i W[o, i] x[i] for x [in], y [out], W dequantized
// 8 at a time in registers (AVX2 where the build has it) and never written out.
// Summation order, fixed so that the vector and scalar forms agree bit for bit: lane l in 0..7
// of accumulator a in 0..3 adds, in increasing i, the products W[o,i]*x[i] (rounded, then added:
// no fused multiply-add) with i = 32k + 8a + l for i < floor(in/32)*32; then
// s = ((acc0 + acc1) + (acc2 + acc3)) lane-wise, then the lanes ((s0+s4) + (s2+s6)) +
// ((s1+s5) + (s3+s7)), then the remaining i in increasing order, one by one.
void fused_matvec(const CompactMatrix& w, const float* x, float* y);
// The same order in plain scalar code over a float32 W [out, in] (e.g. w.to_f32_reference()):
// the bit-exact check of the above.
void fused_matvec_reference(const Mat& w, const float* x, float* y);

}  // namespace dsv3::model
