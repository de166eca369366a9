// Emulated FP8 GEMM throughput for each accumulation mode beside a float32 Eigen GEMM of the
// same shape, in one run: the h100 mode's cost over float32 is the number to watch.
//   ./bench_fp8 --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <vector>

#include "reference/fp8/analysis.h"
#include "reference/fp8/gemm.h"
#include "reference/fp8/quant.h"

namespace {

using namespace dsv3;
using namespace dsv3::fp8;

// A decode-sized projection: 64 tokens through a 1024 -> 512 linear.
constexpr int64_t kM = 64, kN = 512, kK = 1024;

struct Operands {
  Mat x = random_matrix(kM, kK, Dist::kRandn, 1);
  Mat w = random_matrix(kN, kK, Dist::kRandn, 2) * 0.02f;
  QMatrix qx = quantize_activations(x);
  QMatrix qw = quantize_weights(w);
  QMatrix tx = quantize_per_tensor(x);
  QMatrix tw = quantize_per_tensor(w);
};

const Operands& ops() {
  static const Operands o;
  return o;
}

void set_flops(benchmark::State& st) {
  st.SetItemsProcessed(st.iterations() * 2 * kM * kN * kK);  // items/s = FLOP/s
}

void BM_Fp32Eigen(benchmark::State& st) {
  const Operands& o = ops();
  for (auto _ : st) {
    Mat y = o.x * o.w.transpose();
    benchmark::DoNotOptimize(y.data());
  }
  set_flops(st);
}
BENCHMARK(BM_Fp32Eigen)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Fp8Gemm(benchmark::State& st, Accum accum, int promote, bool tile) {
  const Operands& o = ops();
  for (auto _ : st) {
    Mat y = tile ? gemm(o.qx, o.qw, {accum, promote}) : gemm(o.tx, o.tw, {accum, promote});
    benchmark::DoNotOptimize(y.data());
  }
  set_flops(st);
}
BENCHMARK_CAPTURE(BM_Fp8Gemm, exact, Accum::kExact, 128, true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Fp8Gemm, fp32, Accum::kFp32, 128, true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Fp8Gemm, h100_nc32, Accum::kH100, 32, true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Fp8Gemm, h100_nc128, Accum::kH100, 128, true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Fp8Gemm, h100_none_tensor, Accum::kH100, 0, false)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_QuantizeActivations(benchmark::State& st) {
  const Operands& o = ops();
  for (auto _ : st) {
    QMatrix q = quantize_activations(o.x);
    benchmark::DoNotOptimize(q.codes.data());
  }
  st.SetItemsProcessed(st.iterations() * kM * kK);
}
BENCHMARK(BM_QuantizeActivations)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_TcDot4096(benchmark::State& st) {
  const QMatrix a = quantize_per_tensor(random_matrix(1, 4096, Dist::kRandn, 3));
  const QMatrix b = quantize_per_tensor(random_matrix(1, 4096, Dist::kRandn, 4));
  for (auto _ : st) {
    float r = tc_dot(a.codes, Format::kE4M3, b.codes, Format::kE4M3, 0.0f, 128);
    benchmark::DoNotOptimize(r);
  }
  st.SetItemsProcessed(st.iterations() * 4096);
}
BENCHMARK(BM_TcDot4096)->Unit(benchmark::kMicrosecond);

}  // namespace
