// Prefill on stored weights, K-block by K-block (compact_gemm.h): bit for bit Eigen's float32
// GEMM on the dequantized W, for many shapes, every storage format and one or two threads; the
// block decoder is exact; the plan follows Eigen's own blocking.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "reference/model/compact_gemm.h"
#include "reference/model/compact_linear.h"
#include "reference/model/model.h"
#include "reference/model/sampling.h"
#include "tests/support/compact_random.h"

namespace dsv3::model {
namespace {

using test_support::random_x;
using test_support::same_bits;
// Random weights of format f, [rows, cols], without NaN codes (NaN != NaN would hide a mismatch).
CompactMatrix random_weights(WeightFormat f, int64_t rows, int64_t cols, uint64_t seed) {
  return test_support::random_compact(f, rows, cols, seed);
}

// Eigen's GEMM as the float32 model calls it (model::matmul_wt, more than 8 rows).
Mat eigen_gemm(const Mat& x, const Mat& w) {
  return x * w.transpose();
}

// Runs fn with omp_set_num_threads(n), restoring the previous count.
template <class Fn>
void with_threads([[maybe_unused]] int n, Fn&& fn) {
#if defined(_OPENMP)
  const int before = omp_get_max_threads();
  omp_set_num_threads(n);
  fn();
  omp_set_num_threads(before);
#else
  fn();
#endif
}

const WeightFormat kFormats[] = {WeightFormat::kF32, WeightFormat::kBF16, WeightFormat::kF16,
                                 WeightFormat::kFP8};

TEST(CompactGemm, BlocksDecodeBitForBitLikeTheReference) {
  for (WeightFormat f : kFormats) {
    const CompactMatrix w = random_weights(f, 150, 300, 7);
    const Mat ref = w.to_f32_reference();
    // Ranges that start and end inside 128-column scale blocks, and odd row ranges.
    const int64_t ranges[][4] = {{0, 150, 0, 300},   {3, 17, 5, 133},    {127, 2, 120, 260},
                                 {149, 1, 299, 300}, {10, 40, 256, 300}, {0, 1, 0, 7}};
    for (const auto& r : ranges) {
      const int64_t ld = r[3] - r[2] + 3;
      std::vector<float> out(static_cast<size_t>(r[1] * ld), -1.0f);
      decode_block(w, r[0], r[1], r[2], r[3], out.data(), ld);
      for (int64_t i = 0; i < r[1]; ++i)
        for (int64_t c = r[2]; c < r[3]; ++c)
          ASSERT_EQ(std::bit_cast<uint32_t>(out[i * ld + c - r[2]]),
                    std::bit_cast<uint32_t>(ref(r[0] + i, c)))
              << to_string(f) << " row " << r[0] + i << " col " << c;
    }
  }
}

TEST(CompactGemm, EveryE4M3CodeDecodesExactlyAndNaNCodesAsNaN) {
  std::vector<uint8_t> bytes(256);
  for (int i = 0; i < 256; ++i) bytes[i] = static_cast<uint8_t>(i);
  const CompactMatrix w = make_compact(WeightFormat::kFP8, 1, 256, bytes, {0.75f, 3.0f});
  std::vector<float> out(256);
  decode_block(w, 0, 1, 0, 256, out.data(), 256);
  const Mat ref = w.to_f32_reference();
  for (int i = 0; i < 256; ++i) {
    if ((i & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(out[i])) << i;
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(out[i]), std::bit_cast<uint32_t>(ref(0, i))) << i;
    }
  }
}

TEST(CompactGemm, BadRangesAreRefused) {
  const CompactMatrix w = random_weights(WeightFormat::kBF16, 4, 8, 1);
  float out[64];
  EXPECT_THROW(decode_block(w, 3, 2, 0, 8, out, 8), std::out_of_range);
  EXPECT_THROW(decode_block(w, 0, 1, 4, 9, out, 8), std::out_of_range);
  EXPECT_THROW(decode_block(w, 0, 1, 0, 8, out, 7), std::out_of_range);
  EXPECT_THROW(matmul_wt_kblocked(Mat::Zero(9, 7), w), std::invalid_argument);
}

// The claim of compact_gemm.h: the same bits as Eigen's GEMM on the dequantized W, whatever the
// shape (tails of 24-row panels and 4-token groups, K-blocks with a short last one, one block
// only), the format, the row-block size and the thread count (which changes Eigen's kc).
TEST(CompactGemm, IsBitIdenticalToEigensGemmOnTheDequantizedWeights) {
  const int64_t Ts[] = {9, 17, 64, 256, 300};
  const int64_t Ks[] = {128, 129, 1000, 1024, 2048, 7168};
  const int64_t Ns[] = {1, 5, 24, 100, 257, 1030};
  uint64_t seed = 1;
  int checked = 0;
  for (int64_t T : Ts)
    for (int64_t K : Ks)
      for (int64_t N : Ns) {
        if (T * K * N > int64_t{20} << 20) continue;  // keep the test quick
        const WeightFormat f = kFormats[seed % 4];
        const CompactMatrix w = random_weights(f, N, K, ++seed);
        const Mat x = random_x(T, K, ++seed);
        const Mat wf = w.to_f32_reference();
        for (int threads : {1, 2})
          with_threads(threads, [&] {
            const Mat want = eigen_gemm(x, wf);
            for (int64_t block_rows : {24, 192}) {
              const Mat got = matmul_wt_kblocked(x, w, {.block_rows = block_rows});
              ASSERT_TRUE(same_bits(got, want))
                  << to_string(f) << " T " << T << " N " << N << " K " << K << " threads "
                  << threads << " block_rows " << block_rows << " kc "
                  << eigen_gemm_plan(T, N, K).kc;
            }
            ++checked;
          });
      }
  EXPECT_EQ(checked, 2 * 139);
}

TEST(CompactGemm, IsBitIdenticalOnAnExpertSizedMatrixWithOneAndTwoThreads) {
  // One V3 expert's down_proj shape, fewer rows: K = 2048 in several K-blocks, N = 7168/4.
  const CompactMatrix w = random_weights(WeightFormat::kFP8, 1792, 2048, 11);
  const Mat x = random_x(70, 2048, 12);
  const Mat wf = w.to_f32_reference();
  for (int threads : {1, 2, 3})
    with_threads(threads, [&] {
      EXPECT_TRUE(same_bits(matmul_wt_kblocked(x, w), eigen_gemm(x, wf))) << threads;
    });
}

// Inside a parallel region Eigen's GEMM runs sequentially (its kc for one thread): so does the
// plan, whatever the team.
TEST(CompactGemm, IsBitIdenticalInsideAParallelRegion) {
  const CompactMatrix w = random_weights(WeightFormat::kBF16, 257, 1000, 31);
  const Mat x = random_x(64, 1000, 32);
  const Mat wf = w.to_f32_reference();
  int same = 0, runs = 0;
  with_threads(2, [&] {
#pragma omp parallel reduction(+ : same, runs)
    {
      same += same_bits(matmul_wt_kblocked(x, w), eigen_gemm(x, wf));
      ++runs;
    }
  });
  EXPECT_EQ(same, runs);
}

TEST(CompactGemm, PlanFollowsEigensBlocking) {
  with_threads(1, [] {
    const EigenGemmPlan p = eigen_gemm_plan(256, 2048, 7168);
    EXPECT_TRUE(p.gemm);
    EXPECT_EQ(p.threads, 1);
    EXPECT_GT(p.kc, 0);
    EXPECT_LT(p.kc, 7168);  // K is blocked
    EXPECT_EQ(p.kc % 8, 0);
    EXPECT_EQ(p.mr % 8, 0);
    EXPECT_EQ(p.nr, 4);
  });
  with_threads(2, [] {
    const EigenGemmPlan p = eigen_gemm_plan(256, 2048, 7168);
    EXPECT_EQ(p.threads, 2);
    EXPECT_LE(p.kc, 320);
    EXPECT_EQ(p.kc % 8, 0);
    EXPECT_EQ(eigen_gemm_plan(4, 2048, 7168).threads, 1);  // T / nr = 1: one thread
  });
  EXPECT_FALSE(eigen_gemm_plan(9, 5, 5).gemm);    // 9 + 5 + 5 < 20: coefficient-based
  EXPECT_FALSE(eigen_gemm_plan(9, 1, 512).gemm);  // one output column: GEMV
  EXPECT_TRUE(eigen_gemm_plan(9, 2, 512).gemm);
}

TEST(CompactGemm, MatchesTheReferenceAndCountsOneRead) {
  for (WeightFormat f : kFormats) {
    const CompactMatrix w = random_weights(f, 200, 640, 21);
    const Mat x = random_x(33, 640, 22);
    const uint64_t before = w.bytes_read();
    const Mat got = matmul_wt_kblocked(x, w);
    EXPECT_EQ(w.bytes_read() - before, w.nbytes());
    EXPECT_TRUE(same_bits(got, matmul_wt_reference(x, w))) << to_string(f);
  }
}

}  // namespace
}  // namespace dsv3::model
