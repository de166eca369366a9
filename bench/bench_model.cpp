// Reference-model speed: decode-step latency and prefill throughput, naive vs absorbed MLA
// at several context lengths, beside a plain Eigen GEMM and a memory-copy bandwidth probe
// measured in the same run (docs/performance.md explains how to read them).
#include <benchmark/benchmark.h>

#include <cstring>
#include <map>
#include <memory>

#include "bench/bandwidth.h"
#include "reference/model/model.h"
#include "reference/model/sampling.h"

namespace {
using namespace dsv3;
using model::AttnImpl;

const model::Model& get(const std::string& name) {
  static std::map<std::string, std::unique_ptr<model::Model>> models;
  auto& m = models[name];
  if (!m) m = std::make_unique<model::Model>(model::Model::load(name));
  return *m;
}

// Activated multiply-adds per decoded token in the linear layers (x2 = FLOPs).
double linear_flops_per_token(const model::Config& c) {
  const double d = c.hidden_size, h = c.num_attention_heads;
  double attn = (c.q_lora_rank ? d * c.q_lora_rank + c.q_lora_rank * h * c.qk_head_dim()
                               : d * h * c.qk_head_dim()) +
                d * (c.kv_lora_rank + c.qk_rope_head_dim) +
                c.kv_lora_rank * h * (c.qk_nope_head_dim + c.v_head_dim) + h * c.v_head_dim * d;
  double dense = 3 * d * c.intermediate_size;
  double moe = 3 * d * c.moe_intermediate_size * (c.num_experts_per_tok + c.n_shared_experts) +
               d * c.n_routed_experts;
  double total = c.num_hidden_layers * attn + c.first_k_dense_replace * dense +
                 (c.num_hidden_layers - c.first_k_dense_replace) * moe + d * c.vocab_size;
  return 2 * total;
}

// Bytes of weights touched per decoded token (float32).
double activated_weight_bytes(const model::Config& c) {
  return 4 * linear_flops_per_token(c) / 2;
}

// Decode one token at a given context: the cache is filled with a prefix first (random ids;
// cache contents do not change the work done).
void BM_Decode(benchmark::State& state, const std::string& name, AttnImpl impl) {
  const model::Model& m = get(name);
  const int64_t context = state.range(0);
  auto cache = m.new_cache(impl);
  model::Rng rng(1);
  std::vector<int32_t> prefix(context);
  for (auto& id : prefix) id = static_cast<int32_t>(rng.next() % m.config().vocab_size);
  for (int64_t p = 0; p < context; p += 512)
    m.forward(std::span(prefix).subspan(p, std::min<int64_t>(512, context - p)), cache, {});
  int32_t id[1] = {5};
  for (auto _ : state) {
    m.forward(id, cache, {});
    cache.truncate(context);
  }
  const double flops = linear_flops_per_token(m.config());
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["weight_GB/s"] = benchmark::Counter(activated_weight_bytes(m.config()),
                                                     benchmark::Counter::kIsIterationInvariantRate,
                                                     benchmark::Counter::kIs1000);
  state.counters["cache_MB"] = static_cast<double>(cache.bytes()) / 1e6;
}

void BM_Prefill(benchmark::State& state, const std::string& name, AttnImpl impl) {
  const model::Model& m = get(name);
  const int64_t T = state.range(0);
  model::Rng rng(2);
  std::vector<int32_t> ids(T);
  for (auto& id : ids) id = static_cast<int32_t>(rng.next() % m.config().vocab_size);
  for (auto _ : state) {
    auto cache = m.new_cache(impl);
    benchmark::DoNotOptimize(m.forward(ids, cache, {}));
  }
  state.SetItemsProcessed(state.iterations() * T);
  // The projections' share of the work (attention's scores and sums not counted), to set beside
  // BM_EigenGemm's rate in the same run (issue 18: prefill at >= 50% of it).
  state.counters["linear_GFLOP/s"] = benchmark::Counter(
      static_cast<double>(T) * linear_flops_per_token(m.config()),
      benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// Random initialisation of a whole model (Model::load of a config without a checkpoint: every
// weight drawn from the counter-based normal generator, weights.cpp), tensors allocated too.
void BM_RandomWeights(benchmark::State& state, const std::string& name) {
  const model::Config c = model::resolve_config(name);
  double floats = 0;
  for (auto _ : state) {
    model::ModelWeights w = model::random_weights(c, 0);
    benchmark::DoNotOptimize(w.lm_head.data());
    state.PauseTiming();
    floats = 0;
    model::visit_model(c, w, [&](const std::string&, const auto& t) { floats += t.size(); });
    state.ResumeTiming();
  }
  state.counters["Mfloats"] = floats / 1e6;
  state.counters["floats/s"] =
      benchmark::Counter(floats, benchmark::Counter::kIsIterationInvariantRate);
}

// The same-sized plain Eigen GEMM, for an achievable GFLOP/s on this machine.
void BM_EigenGemm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Mat a = Mat::Random(n, n), b = Mat::Random(n, n), c(n, n);
  for (auto _ : state) {
    c.noalias() = a * b.transpose();
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

BENCHMARK_CAPTURE(BM_Decode, tiny_absorbed, "tiny", AttnImpl::kAbsorbed)
    ->Arg(256)
    ->Arg(2048)
    ->Arg(8192)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decode, tiny_naive, "tiny", AttnImpl::kNaive)
    ->Arg(256)
    ->Arg(2048)
    ->Arg(8192)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Decode, small_absorbed, "small", AttnImpl::kAbsorbed)
    ->Arg(256)
    ->Arg(2048)
    ->Arg(8192)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, small_naive, "small", AttnImpl::kNaive)
    ->Arg(256)
    ->Arg(2048)
    ->Arg(8192)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Prefill, tiny_absorbed, "tiny", AttnImpl::kAbsorbed)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Prefill, tiny_naive, "tiny", AttnImpl::kNaive)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Prefill, small_absorbed, "small", AttnImpl::kAbsorbed)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Prefill, small_naive, "small", AttnImpl::kNaive)
    ->Arg(256)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_RandomWeights, small, "small")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EigenGemm)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(dsv3::bench::BM_CopyBandwidth)->Unit(benchmark::kMillisecond);

}  // namespace
