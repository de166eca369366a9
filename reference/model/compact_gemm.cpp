#include "reference/model/compact_gemm.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>

#include "reference/io/safetensors.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace dsv3::model {

namespace {

namespace ei = Eigen::internal;
using Index = Eigen::Index;

// The column-major product Eigen runs for the row-major y [T, N] = x W^T (GeneralMatrixMatrix.h,
// the RowMajor result transposed): y^T [N, T] = W [N, K] x^T [K, T], its left-hand side W
// row-major, its right-hand side x^T column-major, the result column-major with stride N. The
// same template arguments as there, so the same packing routines and the same gebp kernel.
using Traits = ei::gebp_traits<float, float>;
using LhsMapper = ei::const_blas_data_mapper<float, Index, Eigen::RowMajor>;
using RhsMapper = ei::const_blas_data_mapper<float, Index, Eigen::ColMajor>;
using ResMapper = ei::blas_data_mapper<float, Index, Eigen::ColMajor, Eigen::Unaligned, 1>;
using PackLhs = ei::gemm_pack_lhs<float, Index, LhsMapper, Traits::mr, Traits::LhsProgress,
                                  typename Traits::LhsPacket4Packing, Eigen::RowMajor>;
using PackRhs = ei::gemm_pack_rhs<float, Index, RhsMapper, Traits::nr, Eigen::ColMajor>;
using Gebp = ei::gebp_kernel<float, float, Index, ResMapper, Traits::mr, Traits::nr, false, false>;
// The blocking object Eigen builds for a row-major float destination of dynamic size.
using Blocking = ei::gemm_blocking_space<Eigen::RowMajor, float, float, Eigen::Dynamic,
                                         Eigen::Dynamic, Eigen::Dynamic, 1, false>;

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// One stored element by the loader's scalar decoders (io::Checkpoint::matrix uses the same).
float scalar_element(WeightFormat f, const uint8_t* p) {
  switch (f) {
    case WeightFormat::kF32: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case WeightFormat::kBF16:
      return io::bf16_to_f32(load_u16(p));
    case WeightFormat::kF16:
      return io::f16_to_f32(load_u16(p));
    case WeightFormat::kFP8:
      return io::e4m3fn_to_f32(*p);
  }
  return 0;
}

#if defined(__AVX2__) && defined(__F16C__)
#define DSV3_GEMM_DECODE_X8 1
// Eight stored elements of format F from p, in float32, exactly; FP8 times its block scale s
// (one rounding, as the reference's float(q) * s).
template <WeightFormat F>
inline __m256 decode_x8(const uint8_t* p, float s) {
  if constexpr (F == WeightFormat::kFP8) {
    // E4M3's sign and 7 magnitude bits (4 exponent, 3 mantissa) moved to F16's places
    // (sign 15, exponent 10..14, mantissa 7..9 of 0..9) read as F16 are float(q) * 2^-8 exactly:
    // the two exponent biases differ by 8 (15 - 7), and F16's subnormals are E4M3's, scaled the
    // same. Times 2^8 (exact), times s (the one rounding). The NaN codes (magnitude 0x7F) read
    // as 1.875 * 2^8 there: set apart.
    const __m128i q = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    const __m128i h = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(q, _mm_set1_epi16(0x80)), 8),
                                   _mm_slli_epi16(_mm_and_si128(q, _mm_set1_epi16(0x7F)), 7));
    const __m256 v =
        _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(256.0f)), _mm256_set1_ps(s));
    const __m128i nan16 =
        _mm_cmpeq_epi16(_mm_and_si128(q, _mm_set1_epi16(0x7F)), _mm_set1_epi16(0x7F));
    const __m256 is_nan = _mm256_castsi256_ps(_mm256_cvtepi16_epi32(nan16));
    return _mm256_blendv_ps(v, _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()), is_nan);
  } else if constexpr (F == WeightFormat::kBF16) {  // the 16 bits are the top of a float32
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  } else if constexpr (F == WeightFormat::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  }
}
#endif

template <WeightFormat F>
void decode_block_t(const CompactMatrix& w, int64_t r0, int64_t rows, int64_t c0, int64_t c1,
                    float* out, int64_t ld) {
  constexpr int64_t eb = F == WeightFormat::kF32 ? 4 : F == WeightFormat::kFP8 ? 1 : 2;
  const int64_t sc = w.scale_cols();
  for (int64_t r = r0; r < r0 + rows; ++r) {
    const uint8_t* p = w.data + static_cast<size_t>(r * w.cols) * eb;
    float* o = out + (r - r0) * ld - c0;  // o[c] is W[r, c]
    // Column segments inside one 128-column block: one FP8 scale each (1 for the other formats).
    for (int64_t a = c0; a < c1;) {
      const int64_t b = std::min(c1, (a / 128 + 1) * 128);
      // W[r, c] = float(q[r, c]) * scale_inv[r / 128, c / 128] (model_spec §9)
      const float s = F == WeightFormat::kFP8 ? w.scale_inv[(r / 128) * sc + a / 128] : 1.0f;
      int64_t c = a;
#if defined(DSV3_GEMM_DECODE_X8)
      for (; c + 8 <= b; c += 8) _mm256_storeu_ps(o + c, decode_x8<F>(p + c * eb, s));
#endif
      for (; c < b; ++c) {
        const float v = scalar_element(F, p + c * eb);
        o[c] = F == WeightFormat::kFP8 ? v * s : v;
      }
      a = b;
    }
  }
}

// An aligned float buffer (gebp reads packed panels with aligned loads).
struct AlignedFloats {
  float* p = nullptr;
  size_t n = 0;
  explicit AlignedFloats(size_t size) : p(ei::aligned_new<float>(size)), n(size) {}
  ~AlignedFloats() { ei::aligned_delete(p, n); }
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
};

std::atomic<PrefillForm> prefill_form_{PrefillForm::kKBlocked};

}  // namespace

void set_prefill_form(PrefillForm f) {
  prefill_form_ = f;
}

PrefillForm prefill_form() {
  return prefill_form_;
}

void decode_block(const CompactMatrix& w, int64_t r0, int64_t rows, int64_t c0, int64_t c1,
                  float* out, int64_t ld) {
  if (r0 < 0 || rows < 0 || r0 + rows > w.rows || c0 < 0 || c1 < c0 || c1 > w.cols || ld < c1 - c0)
    throw std::out_of_range(
        fmt::format("decode_block: rows [{}, {}) columns [{}, {}) ld {} of a "
                    "[{}, {}] matrix",
                    r0, r0 + rows, c0, c1, ld, w.rows, w.cols));
  switch (w.format) {
    case WeightFormat::kF32:
      return decode_block_t<WeightFormat::kF32>(w, r0, rows, c0, c1, out, ld);
    case WeightFormat::kBF16:
      return decode_block_t<WeightFormat::kBF16>(w, r0, rows, c0, c1, out, ld);
    case WeightFormat::kF16:
      return decode_block_t<WeightFormat::kF16>(w, r0, rows, c0, c1, out, ld);
    case WeightFormat::kFP8:
      return decode_block_t<WeightFormat::kFP8>(w, r0, rows, c0, c1, out, ld);
  }
}

EigenGemmPlan eigen_gemm_plan(int64_t T, int64_t N, int64_t K) {
  EigenGemmPlan plan;
  plan.mr = Traits::mr;
  plan.nr = Traits::nr;
  // generic_product_impl<.., GemmProduct>::evalTo: the coefficient-based product for tiny sizes;
  // scaleAndAddTo: nothing for an empty product, GEMV for one output row or column.
  if (K + T + N < EIGEN_GEMM_TO_COEFFBASED_THRESHOLD || K == 0 || T <= 1 || N <= 1) return plan;
#if !EIGEN_VERSION_AT_LEAST(3, 4, 0) || EIGEN_VERSION_AT_LEAST(3, 4, 90)
  return plan;  // the internals followed below are Eigen 3.4's
#endif
  // parallelize_gemm (Parallelizer.h), with rows = T, cols = N, depth = K, transpose = true.
  Index threads = 1;
#if defined(EIGEN_HAS_OPENMP) && !defined(EIGEN_USE_BLAS) && \
    (EIGEN_HAS_CXX11_ATOMIC || EIGEN_ARCH_i386_OR_x86_64)
  Index pb_max_threads = std::max<Index>(1, T / Traits::nr);
  const double work = static_cast<double>(T) * static_cast<double>(N) * static_cast<double>(K);
  pb_max_threads =
      std::max<Index>(1, std::min<Index>(pb_max_threads, static_cast<Index>(work / 50000)));
  threads = std::min<Index>(Eigen::nbThreads(), pb_max_threads);
  if (omp_get_num_threads() > 1) threads = 1;
#endif
  // The blocking of scaleAndAddTo (one thread), or of initParallelSession (several).
  Blocking blocking(T, N, K, 1, true);
  if (threads > 1) blocking.initParallel(T, N, K, threads);
  plan.threads = static_cast<int>(threads);
  plan.kc = blocking.kc();
  // Eigen's row blocks (mc, W rows) and token blocks (nc) start at multiples of mr and nr in
  // every configuration that occurs; should one not (a tiny L1), the paths could differ.
  const Index mc = std::min<Index>(N, blocking.mc()), nc = std::min<Index>(T, blocking.nc());
  const bool rows_ok = threads > 1 || mc == N || mc % Traits::mr == 0;
  const bool cols_ok = nc == T || nc % Traits::nr == 0;
  plan.gemm = plan.kc > 0 && rows_ok && cols_ok;
  return plan;
}

Mat matmul_wt_kblocked(const Mat& x, const CompactMatrix& w, const KBlockedOptions& opt) {
  if (x.cols() != w.cols)
    throw std::invalid_argument(fmt::format("matmul_wt_kblocked: x has {} columns, W is [{}, {}]",
                                            x.cols(), w.rows, w.cols));
  const Index T = x.rows(), N = w.rows, K = w.cols;
  const EigenGemmPlan plan = eigen_gemm_plan(T, N, K);
  if (!plan.gemm) return x * w.to_f32().transpose();  // tiny or one column: as Eigen does
  w.count_read(w.nbytes());
  const Index kc = plan.kc, mr = plan.mr;
  const Index k_blocks = (K + kc - 1) / kc, kc_max = std::min(kc, K);
  // W's rows in blocks of a multiple of mr (the block that ends at N takes the tail panels).
  const Index block_rows = std::max<Index>(mr, (opt.block_rows + mr - 1) / mr * mr);
  const Index panels = (N + mr - 1) / mr;
  // x^T packed as gebp reads it, K-block by K-block (block k0 / kc at packed_x + k0 * T): the
  // size of x, shared by the threads.
  AlignedFloats packed_x(static_cast<size_t>(K * T));
  Mat y = Mat::Zero(T, N);  // evalTo: setZero, then the K-blocks added in order
  PackRhs pack_rhs;
  PackLhs pack_lhs;
  Gebp gebp;
  constexpr Index kTokensPerPackTask = 64;  // a multiple of nr
  const Index token_tasks = (T + kTokensPerPackTask - 1) / kTokensPerPackTask;
#pragma omp parallel if (T * N * K > (1 << 20))
  {
    // Tokens [j0, j1) of a K-block (j0 a multiple of nr) pack to its panel + j0 * akc, as in
    // one call over all tokens.
#pragma omp for schedule(static) collapse(2)
    for (Index kb = 0; kb < k_blocks; ++kb)
      for (Index task = 0; task < token_tasks; ++task) {
        const Index k0 = kb * kc, akc = std::min(kc, K - k0);
        const Index j0 = task * kTokensPerPackTask, j1 = std::min(T, j0 + kTokensPerPackTask);
        pack_rhs(packed_x.p + k0 * T + j0 * akc, RhsMapper(x.data() + j0 * K + k0, K), akc,
                 j1 - j0);
      }
    // This thread's rows of W: whole panels, the same number on every thread (to one panel).
    int tid = 0, team = 1;
#if defined(_OPENMP)
    tid = omp_get_thread_num();
    team = omp_get_num_threads();
#endif
    const Index row0 = panels * tid / team * mr, row1 = std::min(N, panels * (tid + 1) / team * mr);
    // This thread's float32 part of W: one block decoded, then packed as gebp reads it.
    AlignedFloats decoded(static_cast<size_t>(block_rows * kc_max));
    AlignedFloats packed_w(static_cast<size_t>(block_rows * kc_max));
    for (Index k0 = 0; k0 < K; k0 += kc) {
      const Index akc = std::min(kc, K - k0);
      for (Index r0 = row0; r0 < row1; r0 += block_rows) {
        const Index rows = std::min(block_rows, row1 - r0);
        decode_block(w, r0, rows, k0, k0 + akc, decoded.p, akc);
        pack_lhs(packed_w.p, LhsMapper(decoded.p, akc), akc, rows);
        // y^T[r0 .., :] += W[r0 .., k0 .. k0 + akc) x^T[k0 .., :]: the partial sums of this
        // K-block added to the outputs (alpha = 1: fma(P, 1, y) = y + P, one rounding).
        gebp(ResMapper(y.data() + r0, N), packed_w.p, packed_x.p + k0 * T, rows, akc, T, 1.0f);
      }
    }
  }
  return y;
}

}  // namespace dsv3::model
