// Explorer responsiveness: what a key press costs before the screen is redrawn (the session
// change, composing the whole screen as a Canvas, and turning it into terminal output), and
// what startup costs (loading the model, prefilling the default prompt, the first frame).
#include <benchmark/benchmark.h>

#include "app/commands/registry.h"
#include "app/explorer/session.h"
#include "visualizers/explorer_screen.h"

namespace {

using dsv3::app::Session;
namespace viz = dsv3::viz;

std::string frame(const Session& s, viz::Panel p, int w, int h) {
  viz::ScreenState st;
  st.active = p;
  st.hints = "→ step  ← back  ↑↓ layer  Tab panel  : cmd  ? help  q quit";
  st.real = s.real_config();
  viz::ExplorerView v = s.view();
  return viz::render_ansi(viz::compose_screen(v, st, w, h).canvas);
}

// → on a new position: one decode step of the tiny model with tracing, then the frame.
void BM_KeyStepNewToken(benchmark::State& state) {
  Session s;
  for (auto _ : state) {
    if (s.computed() > 400) {
      state.PauseTiming();
      s.set_prompt(dsv3::app::kDefaultPrompt);
      state.ResumeTiming();
    }
    s.step(1);
    benchmark::DoNotOptimize(frame(s, viz::Panel::kRouting, static_cast<int>(state.range(0)),
                                   static_cast<int>(state.range(1))));
  }
}
BENCHMARK(BM_KeyStepNewToken)->Args({80, 24})->Args({160, 48})->Unit(benchmark::kMillisecond);

// ← / → over computed positions: no model work, only the frame.
void BM_KeyRevisit(benchmark::State& state) {
  Session s;
  s.generate(16);
  bool back = true;
  for (auto _ : state) {
    if (back)
      s.back(1);
    else
      s.step(1);
    back = !back;
    benchmark::DoNotOptimize(frame(s, static_cast<viz::Panel>(state.range(2)),
                                   static_cast<int>(state.range(0)),
                                   static_cast<int>(state.range(1))));
  }
}
BENCHMARK(BM_KeyRevisit)
    ->Args({80, 24, 0})
    ->Args({160, 48, 0})
    ->Args({80, 24, 1})
    ->Args({80, 24, 2})
    ->Args({80, 24, 3})
    ->Args({80, 24, 5})
    ->Unit(benchmark::kMillisecond);

// A `:route 1` typed at the prompt: parse, check, run, and the frame.
void BM_KeyCommandRoute(benchmark::State& state) {
  Session s;
  for (auto _ : state) {
    auto o = dsv3::app::registry().run(s, "route 1", dsv3::app::Context{92});
    benchmark::DoNotOptimize(o);
    benchmark::DoNotOptimize(frame(s, viz::Panel::kRouting, 100, 30));
  }
}
BENCHMARK(BM_KeyCommandRoute)->Unit(benchmark::kMillisecond);

// Startup: the model (tiny: the trained checkpoint read from tiny-configs/tiny; small: random
// weights of the 280M config), prefill of the default prompt with tracing, the first frame.
// Issue 18's target for small: under 1 s.
void BM_Startup(benchmark::State& state, const std::string& model) {
  dsv3::app::SessionOptions opt;
  opt.model = model;
  for (auto _ : state) {
    Session s(opt);
    benchmark::DoNotOptimize(frame(s, viz::Panel::kRouting, 100, 30));
  }
}
BENCHMARK_CAPTURE(BM_Startup, tiny, "tiny")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Startup, small, "small")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
