// Memory bandwidth benchmarks that more than one bench program reports beside its own numbers
// (the ceiling a weight-streaming kernel is measured against).
#pragma once

#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

namespace dsv3::bench {

// Copy 256 MB; GB/s counts the bytes read and written.
inline void BM_CopyBandwidth(benchmark::State& state) {
  const size_t n = 256u << 20;
  std::vector<char> a(n, 1), b(n, 0);
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), n);
    benchmark::DoNotOptimize(b.data());
  }
  state.counters["GB/s"] = benchmark::Counter(
      2.0 * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

}  // namespace dsv3::bench
