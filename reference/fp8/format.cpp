#include "reference/fp8/format.h"

#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace dsv3::fp8 {
namespace {

constexpr FormatInfo kE4M3Info{"e4m3", 4, 3, 7, 448.0f, 0x1p-6f, 0x1p-9f};
constexpr FormatInfo kE5M2Info{"e5m2", 5, 2, 15, 57344.0f, 0x1p-14f, 0x1p-16f};

}  // namespace

const FormatInfo& info(Format f) {
  return f == Format::kE4M3 ? kE4M3Info : kE5M2Info;
}

Format parse_format(std::string_view name) {
  if (name == "e4m3" || name == "e4m3fn") return Format::kE4M3;
  if (name == "e5m2") return Format::kE5M2;
  throw std::invalid_argument(fmt::format("unknown FP8 format '{}' (expected e4m3 or e5m2)", name));
}

bool is_nan(uint8_t code, Format f) {
  if (f == Format::kE4M3) return (code & 0x7F) == 0x7F;
  return (code & 0x7C) == 0x7C && (code & 0x03) != 0;
}

bool is_inf(uint8_t code, Format f) {
  return f == Format::kE5M2 && (code & 0x7F) == 0x7C;
}

Parts parts(uint8_t code, Format f) {
  const FormatInfo& fi = info(f);
  const int m_bits = fi.mantissa_bits;
  const int e_field = (code & 0x7F) >> m_bits;
  const int m_field = code & ((1 << m_bits) - 1);
  Parts p;
  p.sign = (code & 0x80) ? -1 : 1;
  if (e_field == 0) {  // subnormal or zero: hidden bit 0, exponent of the smallest normal
    p.exponent = 1 - fi.bias;
    p.significand = m_field;
  } else {
    p.exponent = e_field - fi.bias;
    p.significand = m_field | (1 << m_bits);
  }
  return p;
}

float decode(uint8_t code, Format f) {
  if (is_nan(code, f)) {
    return (code & 0x80) ? -std::numeric_limits<float>::quiet_NaN()
                         : std::numeric_limits<float>::quiet_NaN();
  }
  if (is_inf(code, f)) {
    return (code & 0x80) ? -std::numeric_limits<float>::infinity()
                         : std::numeric_limits<float>::infinity();
  }
  const Parts p = parts(code, f);
  // At most 4 significant bits times a power of two in [2^-9, 2^15]: exact in binary32.
  return static_cast<float>(p.sign) *
         std::ldexp(static_cast<float>(p.significand), p.exponent - info(f).mantissa_bits);
}

uint8_t encode(float x, Format f, Overflow overflow) {
  const FormatInfo& fi = info(f);
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint8_t sign = (bits >> 24) & 0x80;
  if (std::isnan(x)) return sign | 0x7F;  // sign kept, as PyTorch and ml_dtypes do
  const uint8_t max_code = f == Format::kE4M3 ? 0x7E : 0x7B;
  const uint8_t over_code = overflow == Overflow::kSaturate ? max_code
                            : f == Format::kE4M3            ? uint8_t{0x7F}
                                                            : uint8_t{0x7C};
  if (std::isinf(x)) return sign | over_code;

  // Work on the exact magnitude as an integer multiple of 2^-149 (binary32's quantum): the
  // FP8 quantum at x is 2^(max(e, 1 - bias) - M), so rounding is an integer shift with RNE.
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits == 0) return sign;
  const int e32 = static_cast<int>(abs_bits >> 23);
  uint64_t sig = abs_bits & 0x7FFFFFu;
  int exp = e32 == 0 ? -149 : e32 - 150;  // x = sig * 2^exp
  if (e32 != 0) sig |= 0x800000u;
  const int unbiased = (e32 == 0 ? -127 : e32 - 127);  // floor(log2 |x|) for normals
  const int target_exp = std::max(unbiased, 1 - fi.bias) - fi.mantissa_bits;  // FP8 quantum 2^t
  uint64_t q;                                                                 // |x| / 2^t rounded
  const int shift = target_exp - exp;
  if (shift <= 0) {
    q = sig << (-shift);  // cannot happen for FP8 ranges but keeps the arithmetic total
  } else if (shift >= 64) {
    q = 0;
  } else {
    q = sig >> shift;
    const uint64_t rem = sig & ((uint64_t{1} << shift) - 1);
    const uint64_t half = uint64_t{1} << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;  // ties to even
  }
  // q * 2^target_exp is the rounded magnitude; rebuild the code, letting a carry bump the exponent.
  int e = target_exp + fi.mantissa_bits;  // exponent of q's hidden bit position
  const uint64_t hidden = uint64_t{1} << fi.mantissa_bits;
  if (q >= 2 * hidden) {  // carry out of the significand
    q >>= 1;
    ++e;
  }
  uint32_t e_field;
  if (q < hidden) {
    e_field = 0;  // subnormal (or zero)
  } else {
    e_field = static_cast<uint32_t>(e + fi.bias);
  }
  const uint32_t m_field = static_cast<uint32_t>(q & (hidden - 1));
  // Overflow is judged on the rounded value: above the largest finite code.
  const uint32_t max_e_field = f == Format::kE4M3 ? 15 : 30;
  if (e_field > max_e_field || (f == Format::kE4M3 && e_field == 15 && m_field == 7)) {
    return sign | over_code;
  }
  return static_cast<uint8_t>(sign | (e_field << fi.mantissa_bits) | m_field);
}

uint16_t bf16_encode(float x) {
  const uint32_t b = std::bit_cast<uint32_t>(x);
  if (std::isnan(x)) return static_cast<uint16_t>((b >> 16) | 0x40);  // keep it a quiet NaN
  const uint32_t rounding = 0x7FFFu + ((b >> 16) & 1u);               // ties to even
  return static_cast<uint16_t>((b + rounding) >> 16);
}

float bf16_decode(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

float ue8m0_decode(uint8_t code) {
  if (code == 0xFF) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, static_cast<int>(code) - 127);
}

uint8_t ue8m0_encode_ceil(float scale) {
  if (!(scale > 0.0f) || !std::isfinite(scale)) {
    throw std::invalid_argument("UE8M0 scale must be positive and finite");
  }
  int e;
  const float m = std::frexp(scale, &e);  // scale = m * 2^e, m in [0.5, 1)
  int p = (m == 0.5f) ? e - 1 : e;        // exact power of two stays, else round up
  if (p < -127) p = -127;
  if (p > 127) throw std::invalid_argument("UE8M0 scale out of range");
  return static_cast<uint8_t>(p + 127);
}

std::string format_value(float x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  if (x == 0.0f) return std::signbit(x) ? "-0" : "0";
  return fmt::format("{}", x);
}

}  // namespace dsv3::fp8
