// FP8 / BF16 / UE8M0 formats: every code, every tie, the overflow and subnormal boundaries, both
// overflow policies (research fp8.md sections 1-2).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "reference/fp8/format.h"

namespace dsv3::fp8 {
namespace {

constexpr Overflow kSat = Overflow::kSaturate;
constexpr Overflow kNonSat = Overflow::kNonSaturate;

// Independent decoders: E5M2 is the top byte of binary16; E4M3FN from the OCP table.
double half_to_double(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 31)
    v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (e == 0)
    v = std::ldexp(m, -24);
  else
    v = std::ldexp(1024 + m, e - 25);
  return s ? -v : v;
}

double e4m3_reference(uint8_t c) {
  const int s = c >> 7, e = (c >> 3) & 15, m = c & 7;
  if (e == 15 && m == 7) return std::numeric_limits<double>::quiet_NaN();
  const double v = e == 0 ? std::ldexp(m, -9) : std::ldexp(8 + m, e - 10);
  return s ? -v : v;
}

void expect_same(double want, float got, int code) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << "code " << code;
    return;
  }
  EXPECT_EQ(want, static_cast<double>(got)) << "code " << code;
  EXPECT_EQ(std::signbit(want), std::signbit(got)) << "code " << code;
}

TEST(Fp8Format, DecodesAll256E4M3Codes) {
  int nan = 0, finite = 0;
  for (int c = 0; c < 256; ++c) {
    expect_same(e4m3_reference(static_cast<uint8_t>(c)),
                decode(static_cast<uint8_t>(c), Format::kE4M3), c);
    if (is_nan(static_cast<uint8_t>(c), Format::kE4M3))
      ++nan;
    else
      ++finite;
  }
  EXPECT_EQ(nan, 2);
  EXPECT_EQ(finite, 254);
  EXPECT_EQ(decode(0x7E, Format::kE4M3), 448.0f);
  EXPECT_EQ(decode(0xFE, Format::kE4M3), -448.0f);
  EXPECT_EQ(decode(0x08, Format::kE4M3), 0x1p-6f);
  EXPECT_EQ(decode(0x07, Format::kE4M3), 7 * 0x1p-9f);
  EXPECT_EQ(decode(0x01, Format::kE4M3), 0x1p-9f);
  EXPECT_TRUE(std::signbit(decode(0x80, Format::kE4M3)));
  EXPECT_FALSE(is_inf(0x7C, Format::kE4M3));
}

TEST(Fp8Format, DecodesAll256E5M2CodesAsTopByteOfBinary16) {
  int nan = 0, inf = 0;
  for (int c = 0; c < 256; ++c) {
    const auto code = static_cast<uint8_t>(c);
    expect_same(half_to_double(static_cast<uint16_t>(c << 8)), decode(code, Format::kE5M2), c);
    nan += is_nan(code, Format::kE5M2);
    inf += is_inf(code, Format::kE5M2);
  }
  EXPECT_EQ(nan, 6);
  EXPECT_EQ(inf, 2);
  EXPECT_EQ(decode(0x7B, Format::kE5M2), 57344.0f);
  EXPECT_EQ(decode(0x04, Format::kE5M2), 0x1p-14f);
  EXPECT_EQ(decode(0x01, Format::kE5M2), 0x1p-16f);
  EXPECT_EQ(decode(0xFC, Format::kE5M2), -std::numeric_limits<float>::infinity());
}

// Brute force: the nearest finite code by scanning them all, ties to the even code, overflow
// judged on the rounded magnitude (a tie at the top resolves to a step beyond max if that is even).
uint8_t brute_encode(float x, Format f, Overflow ov) {
  const bool neg = std::signbit(x);
  const double a = std::abs(static_cast<double>(x));
  const FormatInfo& fi = info(f);
  const uint8_t over =
      ov == kSat ? (f == Format::kE4M3 ? 0x7E : 0x7B) : (f == Format::kE4M3 ? 0x7F : 0x7C);
  const uint8_t sign = neg ? 0x80 : 0;
  if (std::isinf(x)) return sign | over;
  // The step above max is one ulp at max's exponent; its code would be "odd" relative to max.
  const double max = fi.max,
               next = max + std::ldexp(1.0, static_cast<int>(std::floor(std::log2(max))) -
                                                fi.mantissa_bits);
  const bool max_even = f == Format::kE4M3;  // 0x7E mantissa 110 (even); 0x7B mantissa 11 (odd)
  if (a > max) {
    const double mid = (max + next) / 2;
    if (a > mid || (a == mid && !max_even)) return sign | over;
    return sign | (over == 0x7F || over == 0x7C ? (f == Format::kE4M3 ? 0x7E : 0x7B) : over);
  }
  int best = -1;
  double best_d = 0;
  for (int c = 0; c < 128; ++c) {
    const auto code = static_cast<uint8_t>(c);
    if (is_nan(code, f) || is_inf(code, f)) continue;
    const double v = decode(code, f);
    const double d = std::abs(v - a);
    if (best < 0 || d < best_d || (d == best_d && (c & 1) == 0)) {
      best = c;
      best_d = d;
    }
  }
  return static_cast<uint8_t>(sign | best);
}

TEST(Fp8Format, EncodeRoundTripsEveryFiniteCode) {
  for (Format f : {Format::kE4M3, Format::kE5M2}) {
    for (int c = 0; c < 256; ++c) {
      const auto code = static_cast<uint8_t>(c);
      if (is_nan(code, f) || is_inf(code, f)) continue;
      EXPECT_EQ(encode(decode(code, f), f, kSat), code) << info(f).name << " " << c;
      EXPECT_EQ(encode(decode(code, f), f, kNonSat), code) << info(f).name << " " << c;
    }
  }
}

TEST(Fp8Format, EveryTieAndOneUlpAroundItMatchesBruteForce) {
  for (Format f : {Format::kE4M3, Format::kE5M2}) {
    std::vector<double> values;
    for (int c = 0; c < 128; ++c) {
      const auto code = static_cast<uint8_t>(c);
      if (!is_nan(code, f) && !is_inf(code, f)) values.push_back(decode(code, f));
    }
    const double max = info(f).max;
    values.push_back(max + std::ldexp(1.0, static_cast<int>(std::floor(std::log2(max))) -
                                               info(f).mantissa_bits));
    int ties = 0;
    for (size_t i = 0; i + 1 < values.size(); ++i) {
      const auto mid = static_cast<float>((values[i] + values[i + 1]) / 2);  // exact in binary32
      ASSERT_EQ(static_cast<double>(mid), (values[i] + values[i + 1]) / 2);
      ++ties;
      for (float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f)}) {
        for (Overflow ov : {kSat, kNonSat}) {
          EXPECT_EQ(encode(x, f, ov), brute_encode(x, f, ov)) << info(f).name << " x=" << x;
          EXPECT_EQ(encode(-x, f, ov), brute_encode(-x, f, ov)) << info(f).name << " x=" << -x;
        }
      }
    }
    EXPECT_EQ(ties, f == Format::kE4M3 ? 127 : 124);
  }
}

TEST(Fp8Format, RandomFloatsMatchBruteForce) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  int n = 0;
  for (Format f : {Format::kE4M3, Format::kE5M2}) {
    for (int i = 0; i < 40000; ++i) {
      // Random exponent spread around the format's range, random mantissa bits.
      const int e = static_cast<int>(bits(rng) % 48) - 30 + (f == Format::kE5M2 ? 4 : 0);
      const float x = std::ldexp(1.0f + static_cast<float>(bits(rng) >> 9) * 0x1p-23f, e) *
                      ((bits(rng) & 1) ? -1.0f : 1.0f);
      for (Overflow ov : {kSat, kNonSat}) {
        ASSERT_EQ(encode(x, f, ov), brute_encode(x, f, ov)) << info(f).name << " x=" << x;
        ++n;
      }
    }
  }
  EXPECT_EQ(n, 160000);
}

TEST(Fp8Format, OverflowBoundaries) {
  // E4M3: 464 is the tie between 448 and the nonexistent 480; 448 has the even mantissa.
  EXPECT_EQ(encode(464.0f, Format::kE4M3, kNonSat), 0x7E);
  EXPECT_EQ(encode(std::nextafter(464.0f, 1e9f), Format::kE4M3, kNonSat), 0x7F);
  EXPECT_EQ(encode(std::nextafter(464.0f, 1e9f), Format::kE4M3, kSat), 0x7E);
  EXPECT_EQ(encode(-480.0f, Format::kE4M3, kNonSat), 0xFF);
  EXPECT_EQ(encode(-1e30f, Format::kE4M3, kSat), 0xFE);
  // E5M2: 61440 ties between 57344 and 65536; 65536 is even, so it overflows.
  EXPECT_EQ(encode(61440.0f, Format::kE5M2, kNonSat), 0x7C);
  EXPECT_EQ(encode(61440.0f, Format::kE5M2, kSat), 0x7B);
  EXPECT_EQ(encode(std::nextafter(61440.0f, 0.0f), Format::kE5M2, kNonSat), 0x7B);
  EXPECT_EQ(encode(-61440.0f, Format::kE5M2, kNonSat), 0xFC);
}

TEST(Fp8Format, InfinityNanAndSignedZero) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(encode(inf, Format::kE4M3, kNonSat), 0x7F);
  EXPECT_EQ(encode(-inf, Format::kE4M3, kNonSat), 0xFF);
  EXPECT_EQ(encode(inf, Format::kE4M3, kSat), 0x7E);
  EXPECT_EQ(encode(-inf, Format::kE4M3, kSat), 0xFE);
  EXPECT_EQ(encode(inf, Format::kE5M2, kNonSat), 0x7C);
  EXPECT_EQ(encode(-inf, Format::kE5M2, kNonSat), 0xFC);
  EXPECT_EQ(encode(inf, Format::kE5M2, kSat), 0x7B);
  EXPECT_EQ(encode(-inf, Format::kE5M2, kSat), 0xFB);
  for (Format f : {Format::kE4M3, Format::kE5M2}) {
    for (Overflow ov : {kSat, kNonSat}) {
      EXPECT_TRUE(is_nan(encode(nan, f, ov), f));
      EXPECT_EQ(encode(nan, f, ov) & 0x80, 0);
      EXPECT_TRUE(is_nan(encode(-nan, f, ov), f));
      EXPECT_EQ(encode(-nan, f, ov) & 0x80, 0x80);  // sign kept, as PyTorch
      EXPECT_EQ(encode(0.0f, f, ov), 0x00);
      EXPECT_EQ(encode(-0.0f, f, ov), 0x80);
    }
  }
}

TEST(Fp8Format, SubnormalBoundaries) {
  EXPECT_EQ(encode(0x1p-10f, Format::kE4M3), 0x00);  // min_sub / 2 ties to 0
  EXPECT_EQ(encode(-0x1p-10f, Format::kE4M3), 0x80);
  EXPECT_EQ(encode(std::nextafter(0x1p-10f, 1.0f), Format::kE4M3), 0x01);
  EXPECT_EQ(encode(1.5f * 0x1p-9f, Format::kE4M3), 0x02);  // tie 1 | 2 -> even 2
  EXPECT_EQ(encode(15 * 0x1p-10f, Format::kE4M3), 0x08);   // max subnormal | min normal -> 0x08
  EXPECT_EQ(encode(0x1p-17f, Format::kE5M2), 0x00);
  EXPECT_EQ(encode(1.5f * 0x1p-16f, Format::kE5M2), 0x02);
  EXPECT_EQ(encode(7 * 0x1p-17f, Format::kE5M2), 0x04);
  EXPECT_EQ(encode(1e-40f, Format::kE4M3), 0x00);  // binary32 subnormal input
}

TEST(Fp8Format, PartsMatchDecode) {
  for (Format f : {Format::kE4M3, Format::kE5M2}) {
    for (int c = 0; c < 256; ++c) {
      const auto code = static_cast<uint8_t>(c);
      if (is_nan(code, f) || is_inf(code, f)) continue;
      const Parts p = parts(code, f);
      EXPECT_EQ(p.sign * std::ldexp(static_cast<double>(p.significand),
                                    p.exponent - info(f).mantissa_bits),
                static_cast<double>(decode(code, f)));
    }
  }
  EXPECT_EQ(parts(0x01, Format::kE4M3).exponent, -6);  // subnormals count as 1 - bias
  EXPECT_EQ(parts(0x01, Format::kE5M2).exponent, -14);
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(bf16_round(1.0f + 0x1p-8f), 1.0f);                // tie -> even (1.0)
  EXPECT_EQ(bf16_round(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);  // tie -> even (up)
  EXPECT_EQ(bf16_round(std::nextafter(1.0f + 0x1p-8f, 2.0f)), 1.0f + 0x1p-7f);
  EXPECT_EQ(bf16_encode(-2.0f), 0xC000);
  EXPECT_TRUE(std::isnan(bf16_round(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isinf(bf16_round(std::numeric_limits<float>::max())));  // rounds up past max
}

TEST(Ue8m0, PowersOfTwoRoundedUp) {
  EXPECT_EQ(ue8m0_decode(127), 1.0f);
  EXPECT_TRUE(std::isnan(ue8m0_decode(0xFF)));
  EXPECT_EQ(ue8m0_decode(ue8m0_encode_ceil(1.0f)), 1.0f);
  EXPECT_EQ(ue8m0_decode(ue8m0_encode_ceil(0.3f)), 0.5f);
  EXPECT_EQ(ue8m0_decode(ue8m0_encode_ceil(std::nextafter(0.25f, 1.0f))), 0.5f);
  EXPECT_EQ(ue8m0_decode(ue8m0_encode_ceil(3e-7f)), 0x1p-21f);
  EXPECT_THROW(ue8m0_encode_ceil(0.0f), std::invalid_argument);
}

TEST(Fp8Format, FormatValueSpellings) {
  EXPECT_EQ(format_value(decode(0x7F, Format::kE4M3)), "nan");
  EXPECT_EQ(format_value(decode(0xFC, Format::kE5M2)), "-inf");
  EXPECT_EQ(format_value(decode(0x7C, Format::kE5M2)), "inf");
  EXPECT_EQ(format_value(decode(0x80, Format::kE4M3)), "-0");
  EXPECT_EQ(format_value(decode(0x01, Format::kE4M3)), "0.001953125");
  EXPECT_EQ(format_value(decode(0x7E, Format::kE4M3)), "448");
  EXPECT_EQ(format_value(decode(0x01, Format::kE5M2)), "1.5258789e-05");
}

}  // namespace
}  // namespace dsv3::fp8
