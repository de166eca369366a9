#include "reference/fp8/quant.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <stdexcept>

namespace dsv3::fp8 {

namespace {

// encode(v, f, kSaturate) without branches on the data, for the quantizers' inner loops (the
// general encode() stays the definition; Fp8Quant.FastEncoderEqualsEncode checks the two agree).
// Normal results: round the binary32 bits to M mantissa bits, ties to even, by integer addition
// (a carry bumps the exponent), then rebias; above the largest code, saturate. Subnormal results
// (|v| below the smallest normal): |v| * 2^(bias - 1 + M), the value in FP8 quanta, is exact
// and below 2^M, and adding 2^23 rounds it to an integer, ties to even, in one binary32 rounding.
struct FastEncoder {
  int m;
  uint32_t rebias, max_code, min_normal_bits;
  float to_quanta;
  explicit FastEncoder(Format f)
      : m(info(f).mantissa_bits),
        rebias(static_cast<uint32_t>(127 - info(f).bias) << info(f).mantissa_bits),
        max_code(f == Format::kE4M3 ? 0x7Eu : 0x7Bu),
        min_normal_bits(std::bit_cast<uint32_t>(info(f).min_normal)),
        to_quanta(std::ldexp(1.0f, info(f).bias - 1 + info(f).mantissa_bits)) {}

  static bool finite(float v) { return (std::bit_cast<uint32_t>(v) & 0x7FFFFFFFu) < 0x7F800000u; }
  uint8_t finite_code(float v) const {  // v finite
    const uint32_t bits = std::bit_cast<uint32_t>(v);
    const uint32_t a = bits & 0x7FFFFFFFu, sign = (bits >> 24) & 0x80u;
    const int sh = 23 - m;
    const uint32_t r = (a + ((1u << (sh - 1)) - 1u) + ((a >> sh) & 1u)) >> sh;
    const uint32_t normal = std::min(r - rebias, max_code);
    const float quanta = std::abs(v) * to_quanta + 8388608.0f;  // 2^23 + round(|v| / quantum)
    const uint32_t sub = std::bit_cast<uint32_t>(quanta) - 0x4B000000u;
    return static_cast<uint8_t>(sign | (a >= min_normal_bits ? normal : sub));
  }
  uint8_t operator()(float v) const {
    return finite(v) ? finite_code(v) : encode(v, m == 3 ? Format::kE4M3 : Format::kE5M2);
  }
};

// decode() of every code, for dequantization.
struct DecodeTable {
  std::array<float, 256> v{};
  explicit DecodeTable(Format f) {
    for (int c = 0; c < 256; ++c) v[c] = decode(static_cast<uint8_t>(c), f);
  }
};
const DecodeTable& decode_table(Format f) {
  static const DecodeTable e4m3(Format::kE4M3), e5m2(Format::kE5M2);
  return f == Format::kE4M3 ? e4m3 : e5m2;
}

}  // namespace

uint8_t encode_fast(float v, Format f) {
  return FastEncoder(f)(v);
}

float tile_scale(float amax, const QuantOptions& opt) {
  const float s = std::max(amax, kMinAmax) / info(opt.format).max;
  return opt.ue8m0 ? ue8m0_decode(ue8m0_encode_ceil(s)) : s;
}

Mat QMatrix::dequantize() const {
  Mat out(rows, cols);
  const DecodeTable& t = decode_table(format);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out(r, c) = t.v[code(r, c)] * scale(r, c);
  }
  return out;
}

QMatrix quantize(const Mat& x, int64_t tile_rows, int64_t tile_cols, const QuantOptions& opt) {
  if (tile_rows < 1 || tile_cols < 1) throw std::invalid_argument("tile sizes must be >= 1");
  QMatrix q;
  q.format = opt.format;
  q.rows = x.rows();
  q.cols = x.cols();
  q.tile_rows = std::max<int64_t>(1, std::min(tile_rows, std::max<int64_t>(1, q.rows)));
  q.tile_cols = std::max<int64_t>(1, std::min(tile_cols, std::max<int64_t>(1, q.cols)));
  q.codes.resize(static_cast<size_t>(q.rows * q.cols));
  q.scales.resize(static_cast<size_t>(q.scale_rows() * q.scale_cols()));
  const int64_t sc = q.scale_cols();
  const bool fast = opt.overflow == Overflow::kSaturate;  // the online scales cannot overflow
  const FastEncoder enc(opt.format);
#pragma omp parallel for schedule(static) if (q.rows * q.cols > 65536)
  for (int64_t tr = 0; tr < q.scale_rows(); ++tr) {
    const int64_t r0 = tr * q.tile_rows, r1 = std::min(q.rows, r0 + q.tile_rows);
    for (int64_t tc = 0; tc < sc; ++tc) {
      const int64_t c0 = tc * q.tile_cols, c1 = std::min(q.cols, c0 + q.tile_cols);
      float amax = 0.0f;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::abs(x(r, c)));
      }
      const float s = tile_scale(amax, opt);
      q.scales[static_cast<size_t>(tr * sc + tc)] = s;
      for (int64_t r = r0; r < r1; ++r) {
        uint8_t* out = q.codes.data() + r * q.cols;
        const float* in = x.data() + r * x.cols();
        bool all_finite = fast;
        if (fast)
          for (int64_t c = c0; c < c1; ++c) {
            const float v = in[c] / s;
            out[c] = enc.finite_code(v);
            all_finite &= FastEncoder::finite(v);
          }
        if (!all_finite)  // NaN or Inf inside: the general encoder for this row of the tile
          for (int64_t c = c0; c < c1; ++c) out[c] = encode(in[c] / s, opt.format, opt.overflow);
      }
    }
  }
  return q;
}

QMatrix quantize_with_scale(const Mat& x, float scale, const QuantOptions& opt) {
  QMatrix q;
  q.format = opt.format;
  q.rows = x.rows();
  q.cols = x.cols();
  q.tile_rows = std::max<int64_t>(1, q.rows);
  q.tile_cols = std::max<int64_t>(1, q.cols);
  q.scales.assign(1, scale);
  q.codes.resize(static_cast<size_t>(q.rows * q.cols));
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      q.codes[static_cast<size_t>(r * q.cols + c)] =
          encode(x(r, c) / scale, opt.format, opt.overflow);
    }
  }
  return q;
}

QMatrix retile_128x1(const QMatrix& q, const QuantOptions& opt) {
  QuantOptions o = opt;
  o.format = q.format;
  return quantize(q.dequantize(), kTile, 1, o);
}

float DelayedScaling::scale() const {
  if (history_.empty()) return 1.0f;
  const float amax = *std::max_element(history_.begin(), history_.end());
  return std::ldexp(std::max(amax, kMinAmax), margin_) / info(opt_.format).max;
}

void DelayedScaling::record(float amax) {
  history_.push_back(amax);
  while (static_cast<int>(history_.size()) > history_len_) history_.pop_front();
}

QMatrix DelayedScaling::quantize_step(const Mat& x) {
  const float s = scale();
  QMatrix q = quantize_with_scale(x, s, opt_);
  const float fmax = info(opt_.format).max;
  for (int64_t i = 0; i < x.size(); ++i) {
    if (std::abs(x.data()[i]) / s > fmax) ++overflows_;
  }
  record(x.size() ? x.cwiseAbs().maxCoeff() : 0.0f);
  return q;
}

}  // namespace dsv3::fp8
