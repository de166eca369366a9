// Plain vs speculative decoding with the MTP drafts (greedy, batch 1, float32 reference code).
// On random weights the MTP drafts are almost never right, so BM_SpeculativeOracle also dials
// in an acceptance rate: the MTP modules still run (their cost is real) but each draft is
// replaced by the main model's greedy token with probability p, by a wrong one otherwise.
//   bench_mtp --benchmark_counters_tabular=true
// BM_MainForwardRows splits a step's cost: a verification forward of R rows vs one decode row.
// Counters: tok_per_s (generated tokens per second), accept (acceptance rate), tok_per_step.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <string>

#include "reference/model/generate.h"
#include "reference/model/speculative.h"

namespace {

using namespace dsv3;

const char* kConfigs[] = {"tiny", "small"};
constexpr int kNewTokens[] = {64, 24};

const model::Model& get_model(int i) {
  static std::map<int, std::unique_ptr<model::Model>> models;
  auto& m = models[i];
  if (!m) m = std::make_unique<model::Model>(model::Model::load(kConfigs[i], 0));
  return *m;
}

std::vector<int32_t> prompt() {
  return {0, 71, 104, 97, 116, 32, 105, 115};
}

// The greedy continuation, long enough for any draft index an oracle may ask about.
const std::vector<int32_t>& reference(int i) {
  static std::map<int, std::vector<int32_t>> refs;
  auto& r = refs[i];
  if (r.empty()) {
    model::GenerateOptions g;
    g.max_new_tokens = kNewTokens[i] + 8;
    r = model::generate(get_model(i), prompt(), g);
  }
  return r;
}

void BM_PlainDecode(benchmark::State& state) {
  const int i = static_cast<int>(state.range(0));
  const model::Model& m = get_model(i);
  model::GenerateOptions g;
  g.max_new_tokens = kNewTokens[i];
  int64_t tokens = 0;
  for (auto _ : state) {
    auto out = model::generate(m, prompt(), g);
    tokens += static_cast<int64_t>(out.size());
  }
  state.counters["tok_per_s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  state.SetLabel(kConfigs[i]);
}
BENCHMARK(BM_PlainDecode)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// One main-model forward over R new tokens after the prompt: R = 1 is a plain decode step,
// R = D + 1 a verification step. The cache is rolled back after each (KVCache::truncate).
void BM_MainForwardRows(benchmark::State& state) {
  const int i = static_cast<int>(state.range(0));
  const int R = static_cast<int>(state.range(1));
  const model::Model& m = get_model(i);
  model::KVCache cache = m.new_cache(model::AttnImpl::kAbsorbed);
  const std::vector<int32_t> p = prompt();
  m.forward(p, cache);
  const std::vector<int32_t> rows(reference(i).begin(), reference(i).begin() + R);
  for (auto _ : state) {
    Mat logits = m.forward(rows, cache);
    benchmark::DoNotOptimize(logits.data());
    cache.truncate(static_cast<int64_t>(p.size()));
  }
  state.SetLabel(std::string(kConfigs[i]) + " rows=" + std::to_string(R));
}
BENCHMARK(BM_MainForwardRows)
    ->ArgsProduct({{0, 1}, {1, 2, 3}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The MTP modules' own drafts (random weights: acceptance near 1/V).
void BM_SpeculativeMtp(benchmark::State& state) {
  const int i = static_cast<int>(state.range(0));
  const int D = static_cast<int>(state.range(1));
  const model::Model& m = get_model(i);
  model::SpeculativeOptions o;
  o.max_new_tokens = kNewTokens[i];
  o.draft_depth = D;
  int64_t tokens = 0;
  model::SpecStats last;
  for (auto _ : state) {
    auto r = model::speculative_generate(m, prompt(), o);
    tokens += static_cast<int64_t>(r.ids.size());
    last = r.stats;
  }
  state.counters["tok_per_s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  state.counters["accept"] = last.acceptance_rate();
  state.counters["tok_per_step"] = last.tokens_per_step();
  state.SetLabel(std::string(kConfigs[i]) + " D=" + std::to_string(D));
}
BENCHMARK(BM_SpeculativeMtp)
    ->Args({0, 1})
    ->Args({1, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Artificial acceptance rate p (percent) per draft, chained drafts i.i.d.
void BM_SpeculativeOracle(benchmark::State& state) {
  const int i = static_cast<int>(state.range(0));
  const double p = static_cast<double>(state.range(1)) / 100.0;
  const int D = static_cast<int>(state.range(2));
  const model::Model& m = get_model(i);
  const std::vector<int32_t>& ref = reference(i);
  const int64_t V = m.config().vocab_size, P = static_cast<int64_t>(prompt().size());
  int64_t tokens = 0, steps = 0, step_tokens = 0, proposed = 0, accepted = 0;
  uint64_t seed = 1;
  for (auto _ : state) {
    model::MtpDrafter drafter(m, model::AttnImpl::kAbsorbed);
    model::Rng rng(seed++);
    drafter.override_token = [&](int, int64_t index, int32_t) {
      const int32_t truth = ref[index - P];
      return rng.uniform() < p ? truth
                               : static_cast<int32_t>((truth + 1 + rng.next() % (V - 1)) % V);
    };
    model::SpeculativeOptions o;
    o.max_new_tokens = kNewTokens[i];
    o.draft_depth = D;
    auto r = model::speculative_generate(m, prompt(), o, &drafter);
    tokens += static_cast<int64_t>(r.ids.size());
    steps += r.stats.steps;
    step_tokens += r.stats.step_tokens;
    proposed += r.stats.proposed_total();
    accepted += r.stats.accepted_total();
  }
  state.counters["tok_per_s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  state.counters["accept"] =
      proposed ? static_cast<double>(accepted) / static_cast<double>(proposed) : 0.0;
  state.counters["tok_per_step"] =
      steps ? static_cast<double>(step_tokens) / static_cast<double>(steps) : 0.0;
  state.SetLabel(std::string(kConfigs[i]) + " p=" + std::to_string(state.range(1)) +
                 "% D=" + std::to_string(D));
}
BENCHMARK(BM_SpeculativeOracle)
    ->ArgsProduct({{0, 1}, {50, 60, 70, 80, 90}, {1}})
    ->Args({0, 80, 2})
    ->Args({0, 80, 3})
    ->Args({1, 80, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
