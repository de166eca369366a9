// The counter-based normal generator (normal.h). What guarantees the same bits everywhere:
//  - element i depends on (seed, i) alone: pair p = i / 2 hashes its own counter, so the
//    OpenMP split (any thread count, any chunking) cannot change a value;
//  - only integer operations, float +, -, *, sqrt and int -> float conversions, each correctly
//    rounded by IEEE 754 in the default rounding mode, whether GCC vectorises them (AVX2, SSE4)
//    or not; no libm call (glibc's logf/sincosf differ between versions and vector variants);
//  - this file is compiled with -ffp-contract=off (reference/CMakeLists.txt), so a*b+c is never
//    fused into an FMA on FMA machines and rounds twice everywhere, and without -ffast-math, so
//    nothing is reassociated. -fno-math-errno (sqrt without an errno check) and
//    -fno-trapping-math (the selects below may compute both sides) let GCC vectorise the loop;
//    neither changes a value. The test FillNormal.SameBitsForAnyThreadCount holds this to it.
#include "reference/model/normal.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <vector>

namespace dsv3::model {

namespace {

// triple32 (C. Wellons, hash-prospector): a bijection of 32-bit words with near-ideal avalanche
// (bias 0.021). 32-bit multiplies vectorise on SSE4.1 and AVX2 alike (pmulld).
[[gnu::always_inline]] inline uint32_t mix32(uint32_t x) {
  x ^= x >> 17;
  x *= 0xED5AD4BBu;
  x ^= x >> 11;
  x *= 0xAC4C1B51u;
  x ^= x >> 15;
  x *= 0x31848BABu;
  x ^= x >> 14;
  return x;
}

// ln u for u in [2^-32, 1]: u = m 2^e with m in [sqrt(1/2), sqrt(2)), ln u = ln m + e ln 2, ln m
// from a degree-9 polynomial in x = m - 1 (Cephes logf, about 1 ulp); ln 2 split in two parts
// (0.693359375 is exact in a few bits) so e ln 2 adds without rounding error.
[[gnu::always_inline]] inline float log_unit(float u) {
  const uint32_t bits = std::bit_cast<uint32_t>(u);
  int32_t e = static_cast<int32_t>(bits >> 23) - 126;
  const float m = std::bit_cast<float>((bits & 0x007FFFFFu) | 0x3F000000u);  // [0.5, 1)
  const bool low = m < 0.707106781186547524f;
  e = low ? e - 1 : e;
  const float x = low ? m + m - 1.0f : m - 1.0f;
  const float z = x * x;
  float y = 7.0376836292E-2f;
  y = y * x - 1.1514610310E-1f;
  y = y * x + 1.1676998740E-1f;
  y = y * x - 1.2420140846E-1f;
  y = y * x + 1.4249322787E-1f;
  y = y * x - 1.6668057665E-1f;
  y = y * x + 2.0000714765E-1f;
  y = y * x - 2.4999993993E-1f;
  y = y * x + 3.3333331174E-1f;
  y = y * x * z;
  const float fe = static_cast<float>(e);
  y = y + fe * -2.12194440E-4f;
  y = y - 0.5f * z;
  return x + y + fe * 0.693359375f;
}

// The Box-Muller pair of two words (Box & Muller 1958): z0 = r cos t, z1 = r sin t with
// r = sqrt(-2 ln u1), t uniform on the circle.
//   u1 = (a >> 1) 2^-31 + 2^-32, in [2^-32, 1]   (so r <= sqrt(64 ln 2) = 6.66)
//   t  = q pi/2 + x: quadrant q = the top 2 bits of b, x in [-pi/4, pi/4) from the next 24,
// where sin x and cos x are short polynomials (Cephes sinf/cosf, about 1 ulp); the quadrant
// turns (cos x, sin x) by q quarter turns: a swap and sign flips, exact.
[[gnu::always_inline]] inline void box_muller(uint32_t a, uint32_t b, float& z0, float& z1) {
  const float u1 = static_cast<float>(static_cast<int32_t>(a >> 1)) * 0x1p-31f + 0x1p-32f;
  const float r = std::sqrt(-2.0f * log_unit(u1));
  const uint32_t q = b >> 30;
  const float f = static_cast<float>(static_cast<int32_t>((b >> 6) & 0xFFFFFFu)) * 0x1p-24f;
  const float x = f * 1.57079632679489662f - 0.785398163397448310f;
  const float z = x * x;
  float s = -1.9515295891E-4f;
  s = s * z + 8.3321608736E-3f;
  s = s * z - 1.6666654611E-1f;
  s = s * z * x + x;
  float c = 2.443315711809948E-5f;
  c = c * z - 1.388731625493765E-3f;
  c = c * z + 4.166664568298827E-2f;
  c = c * z * z - 0.5f * z + 1.0f;
  // (cos t, sin t) = (c, s), (-s, c), (-c, -s), (s, -c) for q = 0, 1, 2, 3.
  const bool swap = (q & 1u) != 0;
  const uint32_t cos_sign = ((q + 1u) & 2u) << 30, sin_sign = (q & 2u) << 30;
  const float cos_t = std::bit_cast<float>(std::bit_cast<uint32_t>(swap ? s : c) ^ cos_sign);
  const float sin_t = std::bit_cast<float>(std::bit_cast<uint32_t>(swap ? c : s) ^ sin_sign);
  z0 = r * cos_t;
  z1 = r * sin_t;
}

// Keys of the pair counters p with p >> 32 == hi: the counter's low word is hashed twice with
// two keys (k0, k1) so that another seed's stream is no shifted or permuted copy of this one;
// the angle word is one more hash of the radius word with a third key.
struct Keys {
  uint32_t k0, k1, k2;
};
Keys keys(uint64_t seed, uint64_t hi) {
  const uint64_t a = splitmix64(seed ^ splitmix64(hi)), b = splitmix64(a);
  return {static_cast<uint32_t>(a), static_cast<uint32_t>(a >> 32), static_cast<uint32_t>(b)};
}

// Pairs [p0, p0 + count) of one 2^32-aligned block into out[2 (p - p0)], out[2 (p - p0) + 1].
// The loop GCC vectorises: 8 pairs per iteration with AVX2, 4 with SSE4.
void fill_pairs(float* out, uint64_t p0, int64_t count, const Keys& k, float stddev) {
  const uint32_t j0 = static_cast<uint32_t>(p0);
  for (int64_t t = 0; t < count; ++t) {
    const uint32_t a = mix32(mix32(j0 + static_cast<uint32_t>(t) + k.k0) ^ k.k1);
    const uint32_t b = mix32(a + k.k2);
    float z0, z1;
    box_muller(a, b, z0, z1);
    out[2 * t] = z0 * stddev;
    out[2 * t + 1] = z1 * stddev;
  }
}

}  // namespace

void normal_pair(uint32_t a, uint32_t b, float& z0, float& z1) {
  box_muller(a, b, z0, z1);
}

void fill_normal(std::span<const NormalFill> fills) {
  // Tiles of 4096 pairs (32 KB of output), aligned so that none crosses a 2^32-pair block;
  // first[f] = the index of fill f's first tile among all fills' tiles.
  constexpr int64_t kTile = 4096;
  std::vector<int64_t> first(fills.size() + 1, 0);
  int64_t total = 0;
  for (size_t f = 0; f < fills.size(); ++f) {
    first[f + 1] = first[f] + (fills[f].n / 2 + kTile - 1) / kTile;
    total += fills[f].n;
  }
  const int64_t tiles = first.back();
#pragma omp parallel for schedule(dynamic, 8) if (total > 65536)
  for (int64_t t = 0; t < tiles; ++t) {
    const size_t f =
        static_cast<size_t>(std::upper_bound(first.begin(), first.end(), t) - first.begin() - 1);
    const NormalFill& x = fills[f];
    const int64_t p0 = (t - first[f]) * kTile, count = std::min(kTile, x.n / 2 - p0);
    fill_pairs(x.out + 2 * p0, static_cast<uint64_t>(p0), count,
               keys(x.seed, static_cast<uint64_t>(p0) >> 32), x.stddev);
  }
  for (const NormalFill& x : fills) {
    if (x.n % 2 == 0) continue;  // the last element of an odd n: the first of its pair
    float pair[2];
    const uint64_t p = static_cast<uint64_t>(x.n / 2);
    fill_pairs(pair, p, 1, keys(x.seed, p >> 32), x.stddev);
    x.out[x.n - 1] = pair[0];
  }
}

void fill_normal(float* out, int64_t n, uint64_t seed, float stddev) {
  const NormalFill one{out, n, seed, stddev};
  fill_normal(std::span<const NormalFill>(&one, 1));
}

}  // namespace dsv3::model
