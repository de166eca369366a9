// Normal samples for random and training initialisation (weights.cpp): a counter-based
// generator, so that element i of a tensor is a function of (seed, i) alone — the same values
// for any thread count, any chunking and on every x86-64 machine — and fast enough to fill the
// small config's 311M floats in well under a second (issue 18; docs/performance.md).
#pragma once

#include <cstdint>
#include <span>

namespace dsv3::model {

// splitmix64 (Steele, Lea, Flood 2014): a 64-bit mixer, used to derive per-tensor seeds.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// out[i] = stddev * z_i, z_i ~ N(0, 1), for i in [0, n). Elements 2p and 2p+1 are the Box-Muller
// pair of pair counter p: z = sqrt(-2 ln u1) (cos t, sin t), u1 and t from two 32-bit words
// hashed from (seed, p). Parallel (OpenMP) above 64K elements; bit-identical for any
// OMP_NUM_THREADS and for the native (AVX2) and portable (x86-64-v2) builds (normal.cpp says
// why). |z| <= 6.66 (u1 >= 2^-32): a tail beyond that has probability 2.7e-11.
void fill_normal(float* out, int64_t n, uint64_t seed, float stddev);

// Many tensors in one parallel loop, each as fill_normal(out, n, seed, stddev) would fill it:
// one OpenMP region for a whole model instead of one per tensor (on a loaded machine every
// region waits for its slowest thread; 900 regions cost seconds).
struct NormalFill {
  float* out;
  int64_t n;
  uint64_t seed;
  float stddev;
};
void fill_normal(std::span<const NormalFill> fills);

// One Box-Muller pair from its two 32-bit words (a: the radius, b: the angle), with the
// polynomial log and sin/cos that fill_normal uses; for tests against std::log/std::cos.
void normal_pair(uint32_t a, uint32_t b, float& z0, float& z1);

}  // namespace dsv3::model
