// Speed of the DualPipe timeline model: building schedules, simulating them in each mode, and
// drawing the timeline. The explorer redraws on every cursor move, so drawing must stay cheap.
#include <benchmark/benchmark.h>

#include "reference/pipeline/schedule.h"
#include "reference/pipeline/simulator.h"
#include "visualizers/pipeline_timeline.h"

namespace {

using namespace dsv3;

// Arguments: ranks P, micro-batches N.
void BM_BuildDualPipe(benchmark::State& state) {
  int P = static_cast<int>(state.range(0)), N = static_cast<int>(state.range(1));
  size_t ops = 0;
  for (auto _ : state) {
    pipeline::Schedule s = pipeline::build_dualpipe(P, N);
    ops = 0;
    for (const auto& r : s.ops) ops += r.size();
    benchmark::DoNotOptimize(s);
  }
  state.counters["ops"] = static_cast<double>(ops);
}
BENCHMARK(BM_BuildDualPipe)->Args({8, 20})->Args({16, 64})->Args({64, 256});

template <pipeline::SimMode M>
void BM_SimulateDualPipe(benchmark::State& state) {
  int P = static_cast<int>(state.range(0)), N = static_cast<int>(state.range(1));
  pipeline::Schedule s = pipeline::build_dualpipe(P, N);
  size_t ops = 0;
  for (const auto& r : s.ops) ops += r.size();
  for (auto _ : state) benchmark::DoNotOptimize(pipeline::simulate(s, pipeline::Costs{}, M));
  state.counters["ops/s"] =
      benchmark::Counter(static_cast<double>(ops), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_SimulateDualPipe<pipeline::SimMode::kIdeal>)
    ->Args({8, 20})
    ->Args({16, 64})
    ->Args({64, 256});
BENCHMARK(BM_SimulateDualPipe<pipeline::SimMode::kRendezvous>)
    ->Args({8, 20})
    ->Args({16, 64})
    ->Args({64, 256});

void BM_Simulate1F1B(benchmark::State& state) {
  int P = static_cast<int>(state.range(0)), N = static_cast<int>(state.range(1));
  pipeline::Schedule s = pipeline::build_1f1b(P, N);
  for (auto _ : state) benchmark::DoNotOptimize(pipeline::simulate(s, pipeline::Costs{}));
}
BENCHMARK(BM_Simulate1F1B)->Args({8, 20})->Args({64, 256});

// Arguments: canvas width.
void BM_DrawTimeline(benchmark::State& state) {
  pipeline::SimResult r = pipeline::simulate(pipeline::build_dualpipe(8, 20), pipeline::Costs{});
  viz::PipelineTimelineOptions o;
  o.width = static_cast<int>(state.range(0));
  o.cursor = 30;
  for (auto _ : state) benchmark::DoNotOptimize(viz::draw_pipeline_timeline(r, o));
}
BENCHMARK(BM_DrawTimeline)->Arg(80)->Arg(200);

}  // namespace
