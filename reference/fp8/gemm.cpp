#include "reference/fp8/gemm.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace dsv3::fp8 {
namespace {

__extension__ typedef __int128 Int128;

// Exponent given to zero codes so that zero products never set the slice's emax.
constexpr int kZeroExp = -4096;
constexpr int kSliceK = 32;       // one wgmma: m64nNk32 for 8-bit inputs
constexpr int kAccFracBits = 13;  // e8m13 accumulator, and 13 fraction bits per aligned product

// A code as the tensor core sees it: signed significand and exponent (value = sig * 2^(e - M)).
struct Split {
  int8_t sig;
  int16_t exp;
};

struct SplitTable {
  std::array<Split, 256> t{};
  explicit SplitTable(Format f) {
    for (int c = 0; c < 256; ++c) {
      const auto code = static_cast<uint8_t>(c);
      if (is_nan(code, f) || is_inf(code, f)) {
        t[c] = {0, kZeroExp};  // NaN/Inf inputs are outside the model (fp8.md section 8)
        continue;
      }
      const Parts p = parts(code, f);
      t[c] = {static_cast<int8_t>(p.sign * p.significand),
              static_cast<int16_t>(p.significand == 0 ? kZeroExp : p.exponent)};
    }
  }
};

const SplitTable& table(Format f) {
  static const SplitTable e4m3(Format::kE4M3), e5m2(Format::kE5M2);
  return f == Format::kE4M3 ? e4m3 : e5m2;
}

// |c| = m * 2^(e - 23) with m in [2^23, 2^24): e = floor(log2 |c|). c must be finite, non-zero.
inline void split_f32(float c, int& e, int32_t& m) {
  const uint32_t b = std::bit_cast<uint32_t>(c) & 0x7FFFFFFFu;
  const int field = static_cast<int>(b >> 23);
  if (field != 0) {
    e = field - 127;
    m = static_cast<int32_t>((b & 0x7FFFFFu) | 0x800000u);
  } else {                                   // binary32 subnormal: normalise
    const int lz = std::countl_zero(b) - 8;  // leading zeros within the 24-bit field
    m = static_cast<int32_t>(b << lz);
    e = -126 - lz;
  }
}

// sign * mag * 2^unit_exp, exactly (mag < 2^15 after truncation to 14 bits).
inline float make_f32(bool negative, uint32_t mag, int unit_exp) {
  const int len = std::bit_width(mag);
  const int biased = unit_exp + len - 1 + 127;
  float v;
  if (biased >= 1 && biased <= 254) {
    const uint32_t mant = (mag << (24 - len)) & 0x7FFFFFu;
    v = std::bit_cast<float>((static_cast<uint32_t>(biased) << 23) | mant);
  } else {
    v = std::ldexp(static_cast<float>(mag), unit_exp);
  }
  return negative ? -v : v;
}

// The k-slice model on pre-split operands: sa/ea, sb/eb of n <= 32 products, `frac` = M_a + M_b.
// kN > 0 fixes n at compile time: full slices (all but a ragged tail) then have constant trip
// counts, which GCC's -O2 vectoriser (cheap cost model) takes.
template <int kN>
inline float slice_core_n(const int8_t* sa, const int16_t* ea, const int8_t* sb, const int16_t* eb,
                          int n_runtime, int frac, float c) {
  const int n = kN > 0 ? kN : n_runtime;
  alignas(16) std::array<int32_t, kSliceK> e{};
  int emax = kZeroExp;
  for (int k = 0; k < n; ++k) {
    e[k] = ea[k] + eb[k];
    emax = std::max(emax, e[k]);
  }
  int ec = 0;
  int32_t mc = 0;
  const bool has_c = c != 0.0f;
  if (has_c) {
    split_f32(c, ec, mc);
    emax = std::max(emax, ec);
  }
  if (emax < kZeroExp / 2) return 0.0f;  // no non-zero addend at all
  // Product p = sig_a*sig_b * 2^(e - frac); in units of 2^(emax - 13) it is
  // |sig_a*sig_b| << (13 - frac) >> (emax - e), truncated toward zero.
  //
  // Computed as trunc(p * 2^(lead - d)) in float32, which is the same integer: |p| << lead is
  // below 2^16 (|sig_a * sig_b| <= 225 for E4M3, lead = 7), so p and the scaled value are
  // exact in binary32, scaling by a power of two is exact, and truncation toward zero of
  // |p| * 2^-d is the integer shift's floor. Unlike a per-lane variable shift (AVX2), this
  // vectorises with SSE4 (pmovsx, pmulld, pmaxsd, mulps, cvttps2dq).
  const int lead = kAccFracBits - frac;
  int32_t sum = 0;
  for (int k = 0; k < n; ++k) {
    const int32_t p = static_cast<int32_t>(sa[k]) * sb[k];
    const int d = std::min(emax - e[k], 31);
    const float scale = std::bit_cast<float>(static_cast<uint32_t>(127 + lead - d) << 23);
    sum += static_cast<int32_t>(static_cast<float>(p) * scale);
  }
  if (has_c) {
    // |c| = mc * 2^(ec - 23): in units it is mc >> (emax - ec + 10).
    const int d = std::min(emax - ec + (23 - kAccFracBits), 31);
    const int32_t v = mc >> d;
    sum += c < 0 ? -v : v;
  }
  if (sum == 0) return 0.0f;
  uint32_t mag = static_cast<uint32_t>(sum < 0 ? -sum : sum);
  const int len = std::bit_width(mag);
  if (len > kAccFracBits + 1) {  // keep 14 significant bits, truncating toward zero
    const int drop = len - (kAccFracBits + 1);
    mag = (mag >> drop) << drop;
  }
  return make_f32(sum < 0, mag, emax - kAccFracBits);
}

inline float slice_core(const int8_t* sa, const int16_t* ea, const int8_t* sb, const int16_t* eb,
                        int n, int frac, float c) {
  return n == kSliceK ? slice_core_n<kSliceK>(sa, ea, sb, eb, n, frac, c)
                      : slice_core_n<0>(sa, ea, sb, eb, n, frac, c);
}

// Operand rows split once: sig [rows, K] and exp [rows, K].
struct SplitMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<int8_t> sig;
  std::vector<int16_t> exp;
  SplitMatrix(std::span<const uint8_t> codes, int64_t r, int64_t c, Format f) : rows(r), cols(c) {
    const SplitTable& t = table(f);
    sig.resize(codes.size());
    exp.resize(codes.size());
    for (size_t i = 0; i < codes.size(); ++i) {
      sig[i] = t.t[codes[i]].sig;
      exp[i] = t.t[codes[i]].exp;
    }
  }
  const int8_t* sig_row(int64_t r) const { return sig.data() + r * cols; }
  const int16_t* exp_row(int64_t r) const { return exp.data() + r * cols; }
};

// W's rows in groups of kLanes, k-major inside a group: [group][k][lane]. The GEMM walks one
// x row against a group, so every step of a slice does the same work for kLanes outputs side by
// side (SIMD across outputs, no horizontal max or sum). Rows past N are zero codes.
constexpr int kLanes = 8;
struct SplitGroups {
  int64_t groups = 0, cols = 0;
  std::vector<int32_t> sig;  // int32 throughout: the lane loops then vectorise cleanly
  std::vector<int32_t> exp;
  explicit SplitGroups(const SplitMatrix& m)
      : groups((m.rows + kLanes - 1) / kLanes), cols(m.cols) {
    sig.assign(groups * cols * kLanes, 0);
    exp.assign(groups * cols * kLanes, kZeroExp);
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t k = 0; k < cols; ++k) {
        const size_t at = ((r / kLanes) * cols + k) * kLanes + r % kLanes;
        sig[at] = m.sig_row(r)[k];
        exp[at] = m.exp_row(r)[k];
      }
  }
  const int32_t* sig_at(int64_t g, int64_t k) const { return sig.data() + (g * cols + k) * kLanes; }
  const int32_t* exp_at(int64_t g, int64_t k) const { return exp.data() + (g * cols + k) * kLanes; }
};

// slice_core for kLanes outputs at once: x's n products against each lane's, c[l] the incoming
// accumulators, updated in place. The same arithmetic as slice_core, written branch-free so that
// every step runs across the lanes in SIMD registers:
// - exponents of FP8 codes lie in [-14, 15], so emax lies in [-28, 30] or is the accumulator's
//   exponent, which stays far below 2^127 for any K; every accumulator is therefore zero or a
//   normal float (at least 2^(-28-13)), and 2^(emax - 13) and 2^(13 - emax) are normal floats;
// - the accumulator's part, |c| >> (emax - e_c + 10) on its 24-bit significand, is
//   trunc(c * 2^(13 - emax)): an exact power-of-two scaling, then truncation toward zero;
// - the sum (|sum| < 2^21) converts to float exactly; clearing the low 10 of its 23 fraction
//   bits keeps 14 significant bits, truncated toward zero; scaling by 2^(emax - 13) is exact.
// Lanes whose products are all zero (emax = kZeroExp, e.g. the padding past N) give +0.
template <int kN>
inline void slice_lanes_n(const int8_t* xs, const int16_t* xe, const int32_t* ws, const int32_t* we,
                          int n_runtime, int frac, float* c) {
  const int n = kN > 0 ? kN : n_runtime;
  alignas(16) int32_t emax[kLanes], sum[kLanes];
  for (int l = 0; l < kLanes; ++l) emax[l] = kZeroExp;
  for (int k = 0; k < n; ++k) {
    const int32_t xek = xe[k];
    for (int l = 0; l < kLanes; ++l) emax[l] = std::max(emax[l], xek + we[k * kLanes + l]);
  }
  for (int l = 0; l < kLanes; ++l) {
    const uint32_t cb = std::bit_cast<uint32_t>(c[l]);
    const int32_t ec = static_cast<int32_t>((cb >> 23) & 0xFFu) - 127;
    emax[l] = (cb & 0x7FFFFFFFu) != 0 ? std::max(emax[l], ec) : emax[l];
    sum[l] = 0;
  }
  const int lead = kAccFracBits - frac;
  for (int k = 0; k < n; ++k) {
    const int32_t xsk = xs[k], xek = xe[k];
    for (int l = 0; l < kLanes; ++l) {
      const int32_t p = xsk * ws[k * kLanes + l];
      const int d = std::min(emax[l] - (xek + we[k * kLanes + l]), 31);
      const float scale = std::bit_cast<float>(static_cast<uint32_t>(127 + lead - d) << 23);
      sum[l] += static_cast<int32_t>(static_cast<float>(p) * scale);
    }
  }
  for (int l = 0; l < kLanes; ++l) {
    const int32_t down = std::clamp(13 - emax[l] + 127, 1, 254);  // 2^(13 - emax), biased
    const int32_t up = std::clamp(emax[l] - 13 + 127, 1, 254);    // 2^(emax - 13), biased
    const int32_t s = sum[l] + static_cast<int32_t>(
                                   c[l] * std::bit_cast<float>(static_cast<uint32_t>(down) << 23));
    const float kept = std::bit_cast<float>(std::bit_cast<uint32_t>(static_cast<float>(s)) &
                                            ~((1u << (23 - kAccFracBits)) - 1u));
    c[l] = kept * std::bit_cast<float>(static_cast<uint32_t>(up) << 23);
  }
}

void check_shapes(const QMatrix& x, const QMatrix& w) {
  if (x.cols != w.cols) {
    throw std::invalid_argument(
        fmt::format("FP8 GEMM: x is [{}, {}] but w is [{}, {}] (K must match)", x.rows, x.cols,
                    w.rows, w.cols));
  }
}

bool varies_along_k(const QMatrix& q) {
  return q.tile_cols < q.cols;
}

}  // namespace

Accum parse_accum(std::string_view name) {
  if (name == "exact") return Accum::kExact;
  if (name == "fp32") return Accum::kFp32;
  if (name == "h100") return Accum::kH100;
  throw std::invalid_argument(
      fmt::format("unknown accumulation '{}' (expected exact, fp32 or h100)", name));
}

const char* to_string(Accum a) {
  switch (a) {
    case Accum::kExact:
      return "exact";
    case Accum::kFp32:
      return "fp32";
    case Accum::kH100:
      return "h100";
  }
  return "?";
}

float tc_slice(std::span<const uint8_t> a, Format fa, std::span<const uint8_t> b, Format fb,
               float c) {
  if (a.size() != b.size() || a.size() > kSliceK) {
    throw std::invalid_argument("tc_slice: a and b must have the same length, at most 32");
  }
  const SplitMatrix sa(a, 1, static_cast<int64_t>(a.size()), fa);
  const SplitMatrix sb(b, 1, static_cast<int64_t>(b.size()), fb);
  const int frac = info(fa).mantissa_bits + info(fb).mantissa_bits;
  return slice_core(sa.sig.data(), sa.exp.data(), sb.sig.data(), sb.exp.data(),
                    static_cast<int>(a.size()), frac, c);
}

float tc_dot(std::span<const uint8_t> a, Format fa, std::span<const uint8_t> b, Format fb, float c,
             int promote) {
  if (a.size() != b.size()) throw std::invalid_argument("tc_dot: a and b differ in length");
  if (promote < 0 || promote % kSliceK != 0) {
    throw std::invalid_argument(
        fmt::format("promotion interval {} is not a multiple of 32", promote));
  }
  const int64_t k_total = static_cast<int64_t>(a.size());
  const SplitMatrix sa(a, 1, k_total, fa);
  const SplitMatrix sb(b, 1, k_total, fb);
  const int frac = info(fa).mantissa_bits + info(fb).mantissa_bits;
  auto chain = [&](int64_t k0, int64_t k1, float acc) {
    for (int64_t k = k0; k < k1; k += kSliceK) {
      const int n = static_cast<int>(std::min<int64_t>(kSliceK, k1 - k));
      acc = slice_core(sa.sig.data() + k, sa.exp.data() + k, sb.sig.data() + k, sb.exp.data() + k,
                       n, frac, acc);
    }
    return acc;
  };
  if (promote == 0) return chain(0, k_total, c);
  float out = c;
  for (int64_t k0 = 0; k0 < k_total; k0 += promote) {
    out = out + chain(k0, std::min<int64_t>(k_total, k0 + promote), 0.0f);  // FADD, round nearest
  }
  return out;
}

Mat gemm(const QMatrix& x, const QMatrix& w, const GemmOptions& opt) {
  check_shapes(x, w);
  if (opt.accum == Accum::kExact) return gemm_exact(x, w).cast<float>();
  const int64_t M = x.rows, N = w.rows, K = x.cols;
  const bool grouped = varies_along_k(x) || varies_along_k(w);
  // Blocks of K that are summed in limited precision before the FP32 FFMA/FADD.
  int64_t block;
  if (opt.accum == Accum::kH100) {
    if (opt.promote < 0 || opt.promote % kSliceK != 0) {
      throw std::invalid_argument(
          fmt::format("promotion interval {} is not a multiple of 32", opt.promote));
    }
    block = opt.promote == 0 ? K : opt.promote;
  } else {  // fp32: one sequential float32 sum per scaling group
    block = grouped
                ? std::min(varies_along_k(x) ? x.tile_cols : K, varies_along_k(w) ? w.tile_cols : K)
                : K;
  }
  if (grouped) {
    for (const QMatrix* q : {&x, &w}) {
      if (varies_along_k(*q) && (block > q->tile_cols || q->tile_cols % block != 0)) {
        throw std::invalid_argument(fmt::format(
            "FP8 GEMM: scales change every {} elements of K but partial sums are promoted every "
            "{}; "
            "tile-wise scales are applied at promotion, so N_C must divide {}",
            q->tile_cols, opt.promote == 0 ? std::string("never") : std::to_string(block),
            q->tile_cols));
      }
    }
  }
  Mat y(M, N);
  const int frac = info(x.format).mantissa_bits + info(w.format).mantissa_bits;
  if (opt.accum == Accum::kH100) {
    const SplitMatrix sx(x.codes, M, K, x.format);
    const SplitGroups sw(SplitMatrix(w.codes, N, K, w.format));
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t g = 0; g < sw.groups; ++g) {
        const int8_t* xs = sx.sig_row(i);
        const int16_t* xe = sx.exp_row(i);
        const int64_t j0 = g * kLanes;
        const int lanes = static_cast<int>(std::min<int64_t>(kLanes, N - j0));
        std::array<float, kLanes> out{};
        for (int64_t b0 = 0; b0 < K; b0 += block) {
          const int64_t b1 = std::min(K, b0 + block);
          std::array<float, kLanes> acc{};
          for (int64_t k = b0; k < b1; k += kSliceK) {
            const int n = static_cast<int>(std::min<int64_t>(kSliceK, b1 - k));
            if (n == kSliceK)
              slice_lanes_n<kSliceK>(xs + k, xe + k, sw.sig_at(g, k), sw.exp_at(g, k), n, frac,
                                     acc.data());
            else
              slice_lanes_n<0>(xs + k, xe + k, sw.sig_at(g, k), sw.exp_at(g, k), n, frac,
                               acc.data());
          }
          // Promotion on the CUDA cores: one FFMA with the block's scales (DeepGEMM), or a
          // plain FADD when the scales are applied once at the end.
          for (int l = 0; l < lanes; ++l)
            out[l] = grouped ? std::fma(x.scale(i, b0) * w.scale(j0 + l, b0), acc[l], out[l])
                             : out[l] + acc[l];
        }
        for (int l = 0; l < lanes; ++l)
          y(i, j0 + l) = grouped ? out[l] : (x.scale(i, 0) * w.scale(j0 + l, 0)) * out[l];
      }
    }
    return y;
  }
  // fp32: products of FP8 values are exact in binary32 (at most 8 significant bits).
  std::vector<float> xv(x.codes.size()), wv(w.codes.size());
  for (size_t i = 0; i < xv.size(); ++i) xv[i] = decode(x.codes[i], x.format);
  for (size_t i = 0; i < wv.size(); ++i) wv[i] = decode(w.codes[i], w.format);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < M; ++i) {
    const float* xr = xv.data() + i * K;
    for (int64_t j = 0; j < N; ++j) {
      const float* wr = wv.data() + j * K;
      float out = 0.0f;
      for (int64_t b0 = 0; b0 < K; b0 += block) {
        const int64_t b1 = std::min(K, b0 + block);
        float acc = 0.0f;
        for (int64_t k = b0; k < b1; ++k) acc += xr[k] * wr[k];
        out = grouped ? std::fma(x.scale(i, b0) * w.scale(j, b0), acc, out) : out + acc;
      }
      y(i, j) = grouped ? out : (x.scale(i, 0) * w.scale(j, 0)) * out;
    }
  }
  return y;
}

Eigen::MatrixXd gemm_exact(const QMatrix& x, const QMatrix& w) {
  check_shapes(x, w);
  const int64_t M = x.rows, N = w.rows, K = x.cols;
  const SplitMatrix sx(x.codes, M, K, x.format);
  const SplitMatrix sw(w.codes, N, K, w.format);
  // Integer products on the finest grid the two formats can produce: 2^(qa + qb).
  const int qa = 1 - info(x.format).bias - info(x.format).mantissa_bits;
  const int qb = 1 - info(w.format).bias - info(w.format).mantissa_bits;
  const int ma = info(x.format).mantissa_bits, mb = info(w.format).mantissa_bits;
  // Scaling groups along K: where either operand's scale changes.
  const int64_t gx = varies_along_k(x) ? x.tile_cols : K;
  const int64_t gw = varies_along_k(w) ? w.tile_cols : K;
  Eigen::MatrixXd y(M, N);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double total = 0.0;
      int64_t k = 0;
      while (k < K) {
        const int64_t k1 = std::min({K, (k / gx + 1) * gx, (k / gw + 1) * gw});
        Int128 s = 0;
        for (int64_t t = k; t < k1; ++t) {
          const int8_t a = sx.sig[i * K + t], b = sw.sig[j * K + t];
          if (a == 0 || b == 0) continue;
          const int shift = (sx.exp[i * K + t] - ma - qa) + (sw.exp[j * K + t] - mb - qb);
          s += static_cast<Int128>(static_cast<int32_t>(a) * b) << shift;
        }
        const double group = std::ldexp(static_cast<double>(s), qa + qb);
        total += group * (static_cast<double>(x.scale(i, k)) * static_cast<double>(w.scale(j, k)));
        k = k1;
      }
      y(i, j) = total;
    }
  }
  return y;
}

}  // namespace dsv3::fp8
