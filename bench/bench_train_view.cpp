// Panel 9 while a run trains: what a key press costs before the screen is redrawn (the key's
// control call on the LiveRun, taking the newest snapshot, composing the whole 80x24 or 160x48
// screen and turning it into terminal output), with the worker thread training the tiny model
// on the built-in demo text on the other core. The budget is 16 ms (one 60 Hz frame).
#include <benchmark/benchmark.h>

#include <filesystem>

#include "app/explorer/session.h"
#include "reference/train/live_run.h"
#include "visualizers/explorer_screen.h"

namespace {

using dsv3::app::Session;
namespace viz = dsv3::viz;
namespace train = dsv3::train;
namespace fs = std::filesystem;

train::TrainOptions demo_options() {
  const fs::path dir = fs::temp_directory_path() / "dsv3-bench-train-view";
  fs::create_directories(dir);
  train::TrainOptions o;
  o.model = "tiny-random";
  o.data = (dir / "demo.safetensors").string();
  train::write_demo_stream(o.data);
  o.save = (dir / "run").string();
  o.steps = 1000000;  // never finishes during the benchmark
  o.lr = 3e-3;
  o.batch = 4;
  o.seq_len = 64;
  o.save_every = 1000000;
  o.eval_every = 1000000;
  return o;
}

// `+` on panel 9 (queue a γ change) and the redraw from the newest snapshot, while training.
void BM_TrainKeyToRedraw(benchmark::State& state) {
  Session s;
  s.start_training(demo_options(), false);
  viz::ScreenState st;
  st.active = viz::Panel::kTrain;
  st.hints = "p pause/run  s step  + - γ  q quit";
  double g = 1e-3;
  for (auto _ : state) {
    g = g > 0.1 ? 1e-3 : g * 2;
    s.training()->set({0, "bias_gamma", std::to_string(g)});
    viz::ExplorerView v = s.view();
    benchmark::DoNotOptimize(
        viz::render_ansi(viz::compose_screen(v, st, static_cast<int>(state.range(0)),
                                             static_cast<int>(state.range(1)))
                             .canvas));
  }
  state.counters["steps_trained"] = static_cast<double>(s.train_snapshot()->step);
  s.stop_training();
}
BENCHMARK(BM_TrainKeyToRedraw)
    ->Args({80, 24})
    ->Args({160, 48})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);

}  // namespace
