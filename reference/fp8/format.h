// OCP FP8 formats (E4M3 "fn" and E5M2), BF16 and the UE8M0 scale format, bit-exact.
// Conversions follow the rule the FP8 authors give: round to nearest even on the exact binary32
// input, then judge overflow on the rounded magnitude (docs/fp8.md, research fp8.md section 2).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dsv3::fp8 {

enum class Format { kE4M3, kE5M2 };
// Saturating (CUDA satfinite, ONNX saturate=True) clamps to +-max; non-saturating (PyTorch <= 2.11,
// ml_dtypes) gives NaN for E4M3 (which has no infinity) and +-Inf for E5M2.
enum class Overflow { kSaturate, kNonSaturate };

struct FormatInfo {
  const char* name;     // "e4m3", "e5m2"
  int exponent_bits;    // 4, 5
  int mantissa_bits;    // M: 3, 2
  int bias;             // 7, 15
  float max;            // 448, 57344
  float min_normal;     // 2^-6, 2^-14
  float min_subnormal;  // 2^-9, 2^-16
};
const FormatInfo& info(Format f);
Format parse_format(std::string_view name);  // "e4m3" | "e5m2"; throws std::invalid_argument

// A code split the way the tensor core sees it: value = sign * significand * 2^(exponent - M),
// significand including the hidden bit (0 for subnormals, whose exponent is 1 - bias).
struct Parts {
  int sign;         // +1 or -1
  int exponent;     // unbiased E; subnormals and zeros report 1 - bias
  int significand;  // E4M3: 0..15, E5M2: 0..7
};
Parts parts(uint8_t code, Format f);  // finite codes only

float decode(uint8_t code, Format f);  // all 256 codes, exact
uint8_t encode(float x, Format f, Overflow overflow = Overflow::kSaturate);
bool is_nan(uint8_t code, Format f);
bool is_inf(uint8_t code, Format f);

// BF16: the top half of binary32, round to nearest even (NaN stays a quiet NaN).
uint16_t bf16_encode(float x);
float bf16_decode(uint16_t b);
inline float bf16_round(float x) {
  return bf16_decode(bf16_encode(x));
}

// UE8M0: an unsigned 8-bit exponent, value 2^(code - 127); code 0xFF is NaN. Used for the
// power-of-two scales of DeepGEMM on SM100 and of MXFP8.
float ue8m0_decode(uint8_t code);
uint8_t ue8m0_encode_ceil(float scale);  // smallest power of two >= scale (scale > 0, finite)

// "nan", "inf", "-inf", "-0", or the shortest decimal that round-trips through binary32.
std::string format_value(float x);

}  // namespace dsv3::fp8
