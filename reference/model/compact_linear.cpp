#include "reference/model/compact_linear.h"

#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "reference/io/safetensors.h"
#include "reference/model/compact_gemm.h"
#include "reference/model/model.h"
#include "reference/model/threads.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace dsv3::model {

const char* to_string(WeightFormat f) {
  switch (f) {
    case WeightFormat::kF32:
      return "F32";
    case WeightFormat::kBF16:
      return "BF16";
    case WeightFormat::kF16:
      return "F16";
    case WeightFormat::kFP8:
      return "F8_E4M3";
  }
  return "?";
}

size_t element_bytes(WeightFormat f) {
  switch (f) {
    case WeightFormat::kF32:
      return 4;
    case WeightFormat::kBF16:
    case WeightFormat::kF16:
      return 2;
    case WeightFormat::kFP8:
      return 1;
  }
  return 0;
}

size_t CompactMatrix::nbytes() const {
  return static_cast<size_t>(rows * cols) * element_bytes(format) + scale_inv.size() * 4;
}

namespace {

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// One element by the scalar decoders of the loader (io::Checkpoint::matrix uses the same ones).
float scalar_element(const CompactMatrix& w, const uint8_t* row_bytes, int64_t c) {
  switch (w.format) {
    case WeightFormat::kF32: {
      float v;
      std::memcpy(&v, row_bytes + 4 * c, 4);
      return v;
    }
    case WeightFormat::kBF16:
      return io::bf16_to_f32(load_u16(row_bytes + 2 * c));
    case WeightFormat::kF16:
      return io::f16_to_f32(load_u16(row_bytes + 2 * c));
    case WeightFormat::kFP8:
      return io::e4m3fn_to_f32(row_bytes[c]);
  }
  return 0;
}

#if defined(__AVX2__)
// Eight E4M3 codes to float32, exactly. Normal codes (exponent field e >= 1): the 7 magnitude
// bits shifted into float32's exponent/mantissa position, exponent rebased by 127 - 7 = 120.
// Subnormal codes (e = 0, value m * 2^-9): built as 2^-6 * (1 + m/8) and 2^-6 taken away, which
// is exact and never creates a float32 denormal (no slow micro-code assists).
inline __m256 e4m3_x8(const uint8_t* p) {
  const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  const __m256i mag = _mm256_and_si256(v, _mm256_set1_epi32(0x7F));
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x80)), 24);
  const __m256i shifted = _mm256_slli_epi32(mag, 20);
  const __m256 normal =
      _mm256_castsi256_ps(_mm256_add_epi32(shifted, _mm256_set1_epi32(120 << 23)));
  const __m256 sub =
      _mm256_sub_ps(_mm256_castsi256_ps(_mm256_or_si256(shifted, _mm256_set1_epi32(121 << 23))),
                    _mm256_set1_ps(0x1p-6f));
  const __m256 is_sub = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(8), mag));
  __m256 f = _mm256_or_ps(_mm256_blendv_ps(normal, sub, is_sub), _mm256_castsi256_ps(sign));
  const __m256 is_nan = _mm256_castsi256_ps(_mm256_cmpeq_epi32(mag, _mm256_set1_epi32(0x7F)));
  return _mm256_blendv_ps(f, _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()), is_nan);
}

// Eight BF16 values: the 16 bits are the top half of a float32.
inline __m256 bf16_x8(const uint8_t* p) {
  const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

// Eight elements of format F, times the FP8 block scale `s` (ignored for the other formats).
template <WeightFormat F>
inline __m256 load_x8(const uint8_t* p, [[maybe_unused]] float s) {
  if constexpr (F == WeightFormat::kFP8) {
    return _mm256_mul_ps(e4m3_x8(p), _mm256_set1_ps(s));
  } else if constexpr (F == WeightFormat::kBF16) {
    return bf16_x8(p);
  } else if constexpr (F == WeightFormat::kF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else {
#if defined(__F16C__)
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#else
    alignas(32) float tmp[8];  // no F16C: the scalar decoder, eight times
    for (int i = 0; i < 8; ++i) tmp[i] = io::f16_to_f32(load_u16(p + 2 * i));
    return _mm256_load_ps(tmp);
#endif
  }
}
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
#define DSV3_EIGEN_ORDER_KERNELS 1
// Eight FP8 codes times their block scale s, exactly float(q) * s, in four instructions. The
// codes sign-extended to 32 bits and shifted left by 20 hold the sign in bits 27..31 and the
// 7 magnitude bits (exponent field e, mantissa m) in bits 20..26; masked, that is the float32
// float(q) * 2^-120 exactly (e >= 1: 2^(e-127) (1 + m/8); e = 0: the float32 denormal
// m * 2^-129). One multiply by s120 = s * 2^120 (exact, a power-of-two shift of s; finite for
// |s| < 2^7) rounds float(q) * s once, as the reference does. NaN codes (0x7F, 0xFF) come out
// finite: rows that hold one take the exact decoder (has_nan_code).
inline __m256 e4m3_scaled_x8(const uint8_t* p, __m256 s120) {
  const __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  const __m256i bits =
      _mm256_and_si256(_mm256_slli_epi32(v, 20), _mm256_set1_epi32(static_cast<int>(0x87F00000u)));
  return _mm256_mul_ps(_mm256_castsi256_ps(bits), s120);
}

// Whether bytes [0, n) hold an E4M3 NaN code (magnitude 0x7F, the largest one).
bool has_nan_code(const uint8_t* p, int64_t n) {
  __m256i mx = _mm256_setzero_si256();
  int64_t i = 0;
  const __m256i mag = _mm256_set1_epi8(0x7F);
  for (; i + 32 <= n; i += 32)
    mx = _mm256_max_epu8(
        mx, _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)), mag));
  alignas(32) uint8_t m[32];
  _mm256_store_si256(reinterpret_cast<__m256i*>(m), mx);
  for (int j = 0; j < 32; ++j)
    if (m[j] == 0x7F) return true;
  for (; i < n; ++i)
    if ((p[i] & 0x7F) == 0x7F) return true;
  return false;
}

// Eight stored weights from element i of a row; FP8 through e4m3_scaled_x8 (s120 its block's).
template <WeightFormat F>
inline __m256 weights_x8(const uint8_t* p, int64_t i, __m256 s120) {
  if constexpr (F == WeightFormat::kFP8) {
    return e4m3_scaled_x8(p + i, s120);
  } else {
    constexpr size_t eb = F == WeightFormat::kF32 ? 4 : 2;
    return load_x8<F>(p + i * eb, 1.0f);
  }
}

// Eigen's horizontal sum of a packet (predux): ((s0+s4) + (s2+s6)) + ((s1+s5) + (s3+s7)).
inline float predux(__m256 a) {
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
}

// R weight rows (o .. o+R-1, row bytes p[r], FP8 block scales sc[r]) dotted with x, each in
// Eigen's order (dot_eigen_order_reference): the rows share the loads of x and give the adds
// 2R independent chains. Every block scale must satisfy |s| < 2^7 and no row a NaN code.
template <WeightFormat F, int R>
void dot_rows_eigen_order(const uint8_t* const* p, const float* const* sc, int64_t in,
                          const float* x, float* y) {
  constexpr size_t eb = F == WeightFormat::kF32 ? 4 : F == WeightFormat::kFP8 ? 1 : 2;
  const int64_t n8 = in / 8, end2 = n8 / 2 * 2;
  // The same place in the next R rows, fetched while these are summed: the stream crosses a 4 KB
  // page every few rows, where the hardware prefetcher stops.
  const int64_t ahead = R * in * static_cast<int64_t>(eb);
  auto s120 = [&](int r, int64_t k) {  // packet k lies in column block k / 16
    return F == WeightFormat::kFP8 ? _mm256_set1_ps(sc[r][k / 16] * 0x1p120f) : _mm256_setzero_ps();
  };
  auto prod = [&](int r, int64_t k, __m256 s) {
    return _mm256_mul_ps(weights_x8<F>(p[r], 8 * k, s), _mm256_loadu_ps(x + 8 * k));
  };
  // Arrays of registers: the r loops are unrolled (R is a constant) so that they stay registers.
  __m256 a0[R], a1[R], s[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    s[r] = s120(r, 0);
    a0[r] = prod(r, 0, s[r]);  // the first packet itself, not 0 + it (keeps -0)
    a1[r] = n8 >= 2 ? prod(r, 1, s[r]) : _mm256_setzero_ps();
  }
  for (int64_t k = 2; k < end2;) {
    const int64_t block_end = std::min(end2, (k / 16 + 1) * 16);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) s[r] = s120(r, k);
    for (; k < block_end; k += 2) {
      if ((k * 8 * static_cast<int64_t>(eb)) % 64 == 0)
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
          _mm_prefetch(reinterpret_cast<const char*>(p[r] + 8 * k * eb + ahead), _MM_HINT_T0);
      const __m256 x0 = _mm256_loadu_ps(x + 8 * k), x1 = _mm256_loadu_ps(x + 8 * k + 8);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        a0[r] = _mm256_add_ps(a0[r], _mm256_mul_ps(weights_x8<F>(p[r], 8 * k, s[r]), x0));
        a1[r] = _mm256_add_ps(a1[r], _mm256_mul_ps(weights_x8<F>(p[r], 8 * k + 8, s[r]), x1));
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    if (n8 >= 2) {
      a0[r] = _mm256_add_ps(a0[r], a1[r]);
      if (n8 & 1) a0[r] = _mm256_add_ps(a0[r], prod(r, n8 - 1, s120(r, n8 - 1)));
    }
    y[r] = predux(a0[r]);
  }
}
#endif

// Calls fn(std::integral_constant<WeightFormat, f>{}): one instantiation per format, so that
// the inner loops know their format at compile time.
template <class Fn>
void with_format(WeightFormat f, Fn&& fn) {
  switch (f) {
    case WeightFormat::kF32:
      return fn(std::integral_constant<WeightFormat, WeightFormat::kF32>{});
    case WeightFormat::kBF16:
      return fn(std::integral_constant<WeightFormat, WeightFormat::kBF16>{});
    case WeightFormat::kF16:
      return fn(std::integral_constant<WeightFormat, WeightFormat::kF16>{});
    case WeightFormat::kFP8:
      return fn(std::integral_constant<WeightFormat, WeightFormat::kFP8>{});
  }
}

template <WeightFormat F>
void decode_row_t(const CompactMatrix& w, int64_t r, float* out) {
  constexpr size_t eb = F == WeightFormat::kF32 ? 4 : F == WeightFormat::kFP8 ? 1 : 2;
  const uint8_t* p = w.data + static_cast<size_t>(r * w.cols) * eb;
  const int64_t sc = w.scale_cols();
#if defined(DSV3_EIGEN_ORDER_KERNELS)
  const bool short_fp8 = F == WeightFormat::kFP8 &&
                         (w.nan_codes->load() == CompactMatrix::kNone || !has_nan_code(p, w.cols));
#endif
  // Column blocks of 128: the FP8 scale is constant inside one (1 for the other formats).
  for (int64_t c0 = 0; c0 < w.cols; c0 += 128) {
    const int64_t c1 = std::min<int64_t>(w.cols, c0 + 128);
    const float s = F == WeightFormat::kFP8 ? w.scale_inv[(r / 128) * sc + c0 / 128] : 1.0f;
    int64_t c = c0;
#if defined(DSV3_EIGEN_ORDER_KERNELS)
    if (short_fp8 && std::fabs(s) < 0x1p7f) {  // the four-instruction decoder (same bits)
      const __m256 s120 = _mm256_set1_ps(s * 0x1p120f);
      for (; c + 8 <= c1; c += 8) _mm256_storeu_ps(out + c, e4m3_scaled_x8(p + c, s120));
    }
#endif
#if defined(__AVX2__)
    for (; c + 8 <= c1; c += 8) _mm256_storeu_ps(out + c, load_x8<F>(p + c * eb, s));
#endif
    for (; c < c1; ++c) {
      const float v = scalar_element(w, p, c);
      out[c] = F == WeightFormat::kFP8 ? v * s : v;
    }
  }
}

#if defined(__AVX2__)
// One output of fused_matvec in the order its header documents.
template <WeightFormat F>
float fused_row(const CompactMatrix& w, int64_t o, const float* x) {
  constexpr size_t eb = F == WeightFormat::kF32 ? 4 : F == WeightFormat::kFP8 ? 1 : 2;
  const int64_t in = w.cols, n32 = in / 32 * 32;
  const uint8_t* p = w.data + static_cast<size_t>(o * in) * eb;
  const float* scales =
      F == WeightFormat::kFP8 ? &w.scale_inv[(o / 128) * w.scale_cols()] : nullptr;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
         acc3 = _mm256_setzero_ps();
  for (int64_t i = 0; i < n32; i += 32) {
    const float s = F == WeightFormat::kFP8 ? scales[i / 128] : 1.0f;  // 32 | 128: one block
    acc0 = _mm256_add_ps(acc0, _mm256_mul_ps(load_x8<F>(p + i * eb, s), _mm256_loadu_ps(x + i)));
    acc1 = _mm256_add_ps(
        acc1, _mm256_mul_ps(load_x8<F>(p + (i + 8) * eb, s), _mm256_loadu_ps(x + i + 8)));
    acc2 = _mm256_add_ps(
        acc2, _mm256_mul_ps(load_x8<F>(p + (i + 16) * eb, s), _mm256_loadu_ps(x + i + 16)));
    acc3 = _mm256_add_ps(
        acc3, _mm256_mul_ps(load_x8<F>(p + (i + 24) * eb, s), _mm256_loadu_ps(x + i + 24)));
  }
  const __m256 s8 = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
  // ((s0+s4) + (s2+s6)) + ((s1+s5) + (s3+s7))
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  float sum = _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
  for (int64_t i = n32; i < in; ++i) {
    float v = scalar_element(w, p, i);
    if (F == WeightFormat::kFP8) v *= scales[i / 128];
    sum += v * x[i];
  }
  return sum;
}
#endif

}  // namespace

void CompactMatrix::row(int64_t r, float* out) const {
  count_read(static_cast<uint64_t>(cols) * element_bytes(format));
  decode_row(r, out);
}

void CompactMatrix::decode_row(int64_t r, float* out) const {
  with_format(format, [&](auto f) { decode_row_t<decltype(f)::value>(*this, r, out); });
}

Mat CompactMatrix::to_f32() const {
  count_read(nbytes());
  Mat m(rows, cols);
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 18))
  for (int64_t r = 0; r < rows; ++r) decode_row(r, m.row(r).data());
  return m;
}

Mat CompactMatrix::to_f32_reference() const {
  Mat m(rows, cols);
  const size_t eb = element_bytes(format);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      m(r, c) = scalar_element(*this, data + static_cast<size_t>(r * cols) * eb, c);
      // W[r, c] = float(q[r, c]) * scale_inv[r / 128, c / 128] (model_spec §9)
      if (format == WeightFormat::kFP8) m(r, c) *= scale_inv[(r / 128) * scale_cols() + c / 128];
    }
  return m;
}

CompactMatrix make_compact(WeightFormat f, int64_t rows, int64_t cols, std::vector<uint8_t> bytes,
                           std::vector<float> scale_inv) {
  if (bytes.size() != static_cast<size_t>(rows * cols) * element_bytes(f))
    throw std::invalid_argument(fmt::format("make_compact: {} bytes for a [{}, {}] {} matrix",
                                            bytes.size(), rows, cols, to_string(f)));
  const size_t want_scales = f == WeightFormat::kFP8
                                 ? static_cast<size_t>(((rows + 127) / 128) * ((cols + 127) / 128))
                                 : 0;
  if (scale_inv.size() != want_scales)
    throw std::invalid_argument(fmt::format("make_compact: {} scales for a [{}, {}] {} matrix",
                                            scale_inv.size(), rows, cols, to_string(f)));
  auto buf = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  CompactMatrix m;
  m.format = f;
  m.rows = rows;
  m.cols = cols;
  m.data = buf->data();
  m.scale_inv = std::move(scale_inv);
  m.owner = buf;
  return m;
}

CompactMatrix compact_f32(const Mat& w) {
  std::vector<uint8_t> bytes(static_cast<size_t>(w.size()) * 4);
  std::memcpy(bytes.data(), w.data(), bytes.size());
  return make_compact(WeightFormat::kF32, w.rows(), w.cols(), std::move(bytes));
}

float dot_eigen_order_reference(const float* a, const float* b, int64_t n) {
  if (n == 0) return 0.0f;
  const int64_t n8 = n / 8;
  float res;
  if (n8 == 0) {
    res = a[0] * b[0];
    for (int64_t i = 1; i < n; ++i) res = res + a[i] * b[i];
    return res;
  }
  auto prod = [&](int64_t k, int l) { return a[8 * k + l] * b[8 * k + l]; };  // lane l of P_k
  float acc0[8], acc1[8];
  for (int l = 0; l < 8; ++l) acc0[l] = prod(0, l);
  if (n8 >= 2) {
    for (int l = 0; l < 8; ++l) acc1[l] = prod(1, l);
    for (int64_t k = 2; k + 1 < n8; k += 2)
      for (int l = 0; l < 8; ++l) {
        acc0[l] = acc0[l] + prod(k, l);
        acc1[l] = acc1[l] + prod(k + 1, l);
      }
    for (int l = 0; l < 8; ++l) acc0[l] = acc0[l] + acc1[l];
    if (n8 % 2)
      for (int l = 0; l < 8; ++l) acc0[l] = acc0[l] + prod(n8 - 1, l);
  }
  res = ((acc0[0] + acc0[4]) + (acc0[2] + acc0[6])) + ((acc0[1] + acc0[5]) + (acc0[3] + acc0[7]));
  for (int64_t i = n8 * 8; i < n; ++i) res = res + a[i] * b[i];
  return res;
}

namespace {

// One output through the exact row decoder and Eigen's own dot: the form for rows the fast
// kernel does not take (a NaN code, a block scale >= 2^7, fewer than 8 columns, no AVX2).
float dot_decoded(const CompactMatrix& w, int64_t o, const float* x, RowVec& buf) {
  w.decode_row(o, buf.data());
  return buf.dot(Eigen::Map<const RowVec>(x, w.cols));
}

}  // namespace

void matvec_eigen_order(const CompactMatrix& w, const float* x, float* y) {
  const int64_t out = w.rows, in = w.cols;
  w.count_read(w.nbytes());
#if defined(DSV3_EIGEN_ORDER_KERNELS)
  bool scales_ok = in >= 8;
  for (float s : w.scale_inv) scales_ok = scales_ok && std::fabs(s) < 0x1p7f;
  // Rows are checked for NaN codes until one whole pass has found none.
  const bool check_nan = w.nan_codes->load() != CompactMatrix::kNone;
  std::atomic<bool> nan_seen = false;
  with_format(w.format, [&](auto f) {
    constexpr WeightFormat F = decltype(f)::value;
    constexpr size_t eb = F == WeightFormat::kF32 ? 4 : F == WeightFormat::kFP8 ? 1 : 2;
    constexpr int R = 4;  // rows per kernel call
    // Rows o0 .. o0+R-1 (fewer at the end); buf: a row for the exact decoder.
    auto rows = [&](int64_t o0, RowVec& buf) {
      const int n = static_cast<int>(std::min<int64_t>(R, out - o0));
      const uint8_t* p[R];
      const float* sc[R] = {};
      bool fast = scales_ok;
      for (int r = 0; r < n; ++r) {
        p[r] = w.data + static_cast<size_t>((o0 + r) * in) * eb;
        if (F != WeightFormat::kFP8) continue;
        sc[r] = &w.scale_inv[((o0 + r) / 128) * w.scale_cols()];
        if (check_nan && has_nan_code(p[r], in)) {
          fast = false;
          nan_seen.store(true, std::memory_order_relaxed);
        }
      }
      if (!fast) {
        for (int r = 0; r < n; ++r) y[o0 + r] = dot_decoded(w, o0 + r, x, buf);
        return;
      }
      if (n == R) {
        dot_rows_eigen_order<F, R>(p, sc, in, x, y + o0);
      } else {
        for (int r = 0; r < n; ++r) dot_rows_eigen_order<F, 1>(p + r, sc + r, in, x, y + o0 + r);
      }
      for (int r = 0; r < n; ++r)  // the last in % 8 columns, one by one (Eigen's tail)
        for (int64_t i = in / 8 * 8; i < in; ++i) {
          float v = scalar_element(w, p[r], i);
          if (F == WeightFormat::kFP8) v *= sc[r][i / 128];
          y[o0 + r] = y[o0 + r] + v * x[i];
        }
    };
    // Threads only for a large W (open_team: not inside another region, not a team of one).
    if (!open_team(out * in > (1 << 18))) {
      RowVec buf(in);
      for (int64_t o0 = 0; o0 < out; o0 += R) rows(o0, buf);
      return;
    }
#pragma omp parallel
    {
      RowVec buf(in);
#pragma omp for schedule(static)
      for (int64_t o0 = 0; o0 < out; o0 += R) rows(o0, buf);
    }
  });
  if (w.format == WeightFormat::kFP8 && check_nan)
    w.nan_codes->store(nan_seen ? CompactMatrix::kSome : CompactMatrix::kNone);
#else
#pragma omp parallel if (out * in > (1 << 18))
  {
    RowVec buf(in);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < out; ++o) y[o] = dot_decoded(w, o, x, buf);
  }
#endif
}

void matvec_f32(const float* w, int64_t rows, int64_t cols, const float* x, float* y) {
  const Eigen::Map<const RowVec> xv(x, cols);
  for (int64_t o = 0; o < rows; ++o) y[o] = Eigen::Map<const RowVec>(w + o * cols, cols).dot(xv);
}

namespace {
std::atomic<MatvecForm> matvec_form{MatvecForm::kInRegisters};
}  // namespace

Mat matmul_wt_blocked(const Mat& x, const CompactMatrix& w, int64_t block_rows) {
  w.count_read(w.nbytes());
  Mat y(x.rows(), w.rows);  // [T, out]
  Mat block;                // [<= block_rows, in]: the only float32 copy of W, a slice of it
  for (int64_t r0 = 0; r0 < w.rows; r0 += block_rows) {
    const int64_t n = std::min(block_rows, w.rows - r0);
    block.resize(n, w.cols);
#pragma omp parallel for schedule(static) if (n * w.cols > (1 << 16))
    for (int64_t r = 0; r < n; ++r) w.decode_row(r0 + r, block.row(r).data());
    y.middleCols(r0, n).noalias() = x * block.transpose();
  }
  return y;
}

void set_matvec_form(MatvecForm f) {
  matvec_form = f;
}

Mat matmul_wt(const Mat& x, const CompactMatrix& w) {
  if (x.cols() != w.cols)
    throw std::invalid_argument(
        fmt::format("matmul_wt: x has {} columns, W is [{}, {}]", x.cols(), w.rows, w.cols));
  // As model::matmul_wt: Eigen's GEMM, here K-block by K-block on W decoded a block at a time
  // (compact_gemm.h: the same bits, no float32 copy of the whole W).
  if (x.rows() > 8)
    return prefill_form() == PrefillForm::kKBlocked ? matmul_wt_kblocked(x, w)
                                                    : Mat(x * w.to_f32().transpose());
  if (x.rows() == 1 &&
      matvec_form ==
          MatvecForm::kInRegisters) {  // decode: the weights decoded in registers, in Eigen's order
    Mat y(1, w.rows);
    matvec_eigen_order(w, x.data(), y.data());
    return y;
  }
  w.count_read(w.nbytes());
  // As model::matmul_wt for a few rows: one pass over W, each output the dot product of a weight
  // row with an input row - here the weight row decoded into float32 just before.
  Mat y(x.rows(), w.rows);
  const Eigen::Index out = w.rows, rows = x.rows();
#pragma omp parallel if (out * w.cols > (1 << 18))
  {
    RowVec wrow(w.cols);
#pragma omp for schedule(static)
    for (Eigen::Index o = 0; o < out; ++o) {
      w.decode_row(o, wrow.data());
      for (Eigen::Index t = 0; t < rows; ++t) y(t, o) = wrow.dot(x.row(t));
    }
  }
  return y;
}

Mat matmul_wt_reference(const Mat& x, const CompactMatrix& w) {
  return model::matmul_wt(x, w.to_f32_reference());
}

void fused_matvec(const CompactMatrix& w, const float* x, float* y) {
  const int64_t out = w.rows, in = w.cols;
  w.count_read(w.nbytes());
#if defined(__AVX2__)
  with_format(w.format, [&](auto f) {
#pragma omp parallel for schedule(static) if (out * in > (1 << 18))
    for (int64_t o = 0; o < out; ++o) y[o] = fused_row<decltype(f)::value>(w, o, x);
  });
#else
#pragma omp parallel if (out * in > (1 << 18))
  {
    Mat row(1, in);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < out; ++o) {
      w.decode_row(o, row.data());
      fused_matvec_reference(row, x, y + o);
    }
  }
#endif
}

void fused_matvec_reference(const Mat& w, const float* x, float* y) {
  const int64_t out = w.rows(), in = w.cols(), n32 = in / 32 * 32;
  for (int64_t o = 0; o < out; ++o) {
    float acc[4][8] = {};
    for (int64_t i = 0; i < n32; i += 32)
      for (int a = 0; a < 4; ++a)
        for (int l = 0; l < 8; ++l) {
          const float prod = w(o, i + 8 * a + l) * x[i + 8 * a + l];
          acc[a][l] = acc[a][l] + prod;
        }
    float s[8];
    for (int l = 0; l < 8; ++l) s[l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
    float sum = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
    for (int64_t i = n32; i < in; ++i) {
      const float prod = w(o, i) * x[i];
      sum = sum + prod;
    }
    y[o] = sum;
  }
}

}  // namespace dsv3::model
