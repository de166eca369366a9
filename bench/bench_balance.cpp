// Routing throughput of the balance lab: DeepSeek-V3's router shape (256 experts, 8 groups of
// which 4 are kept, top-8) over batches of 1 .. 16K tokens, each batch followed by the bias
// update. items_per_second = tokens per second.
#include <benchmark/benchmark.h>

#include <vector>

#include "reference/balance/batch_router.h"
#include "reference/balance/bias_update.h"
#include "reference/balance/rng.h"
#include "reference/model/router.h"

namespace {

using dsv3::Mat;
using namespace dsv3::balance;

constexpr int kExperts = 256, kTopK = 8, kGroups = 8, kKeptGroups = 4;

Mat random_logits(int T, int n, uint64_t seed) {
  Rng rng(seed);
  Mat z(T, n);
  for (Eigen::Index i = 0; i < z.size(); ++i) z.data()[i] = rng.approx_normal();
  return z;
}

// The reference router (one model::route call per token) + counting + bias update.
void BM_RouteReference(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  const auto c = router_config(kExperts, kTopK, kGroups, kKeptGroups, 2.5);
  const Mat z = random_logits(T, kExperts, 1);
  std::vector<float> bias(kExperts, 0.0f);
  BiasBalancer bal(kExperts, 1e-3f);
  for (auto _ : state) {
    for (int t = 0; t < T; ++t) {
      const auto r = dsv3::model::route(c, std::span<const float>(z.row(t).data(), kExperts), bias);
      bal.observe(r.topk_idx);
    }
    benchmark::DoNotOptimize(bal.step(bias));
  }
  state.SetItemsProcessed(state.iterations() * T);
}

// The batched router (same decisions, no per-token allocation; OpenMP from 2048 tokens).
void BM_RouteBatch(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  const auto c = router_config(kExperts, kTopK, kGroups, kKeptGroups, 2.5);
  const Mat z = random_logits(T, kExperts, 2);
  std::vector<float> bias(kExperts, 0.0f);
  BiasBalancer bal(kExperts, 1e-3f);
  BatchRouting out;
  for (auto _ : state) {
    route_batch(c, z, bias, out);
    bal.observe_batch(out.topk_idx, kTopK);
    benchmark::DoNotOptimize(bal.step(bias));
  }
  state.SetItemsProcessed(state.iterations() * T);
}

// Including the gate projection u_t·e_i at V3's hidden size 7168 (the GEMM dominates).
void BM_RouteBatchWithGate(benchmark::State& state) {
  const int T = static_cast<int>(state.range(0));
  constexpr int d = 7168;
  const auto c = router_config(kExperts, kTopK, kGroups, kKeptGroups, 2.5);
  const Mat u = random_logits(T, d, 3);
  Mat e = random_logits(kExperts, d, 4);
  e *= 0.006f;
  std::vector<float> bias(kExperts, 0.0f);
  BiasBalancer bal(kExperts, 1e-3f);
  BatchRouting out;
  Mat z(T, kExperts);
  for (auto _ : state) {
    z.noalias() = u * e.transpose();
    route_batch(c, z, bias, out);
    bal.observe_batch(out.topk_idx, kTopK);
    benchmark::DoNotOptimize(bal.step(bias));
  }
  state.SetItemsProcessed(state.iterations() * T);
}

}  // namespace

BENCHMARK(BM_RouteReference)->RangeMultiplier(16)->Range(1, 16384)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RouteBatch)->RangeMultiplier(16)->Range(1, 16384)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RouteBatchWithGate)
    ->RangeMultiplier(16)
    ->Range(1, 4096)
    ->Unit(benchmark::kMicrosecond);
