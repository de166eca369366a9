// Why the live run (reference/train/live_run.cpp) steps with one OpenMP thread: the same
// training steps of the tiny model on the built-in demo text (batch 4 x 64 tokens, the `train
// start` defaults), timed
//   - on the benchmark's own thread (as `dsv3 train`) or on a second std::thread (as LiveRun's
//     worker),
//   - with 1 OpenMP thread or as many as the machine has cores (the default when
//     OMP_NUM_THREADS is unset),
//   - with the other cores idle or with one thread spinning beside the run
//     (a build, or the explorer redrawing, on a shared machine).
// omp_set_num_threads sets the calling thread's own copy of nthreads-var: a std::thread starts
// from the default, whatever the main thread set. Run it also with OMP_WAIT_POLICY=passive to
// see what the idle threads' spinning costs. Results and the explanation: docs/training.md.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "reference/train/live_run.h"
#include "reference/train/trainer.h"

namespace {

namespace train = dsv3::train;
namespace fs = std::filesystem;

train::TrainOptions demo_options() {
  const fs::path dir = fs::temp_directory_path() / "dsv3-bench-train-threads";
  fs::create_directories(dir);
  train::TrainOptions o;
  o.model = "tiny-random";
  o.data = (dir / "demo.safetensors").string();
  if (!fs::exists(o.data)) train::write_demo_stream(o.data);
  o.save = (dir / "run").string();
  o.steps = 1000000;  // never finishes during the benchmark
  o.lr = 3e-3;
  o.batch = 4;
  o.seq_len = 64;
  return o;
}

// A thread that runs the jobs it is given, one at a time, and reports when each is done.
class Worker {
 public:
  Worker() : t_([this] { loop(); }) {}
  ~Worker() {
    {
      std::lock_guard<std::mutex> l(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    t_.join();
  }
  void run(std::function<void()> job) {
    std::unique_lock<std::mutex> l(mu_);
    job_ = std::move(job);
    cv_.notify_all();
    done_cv_.wait(l, [&] { return !job_; });
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return quit_ || job_; });
      if (quit_) return;
      l.unlock();
      job_();
      l.lock();
      job_ = nullptr;
      done_cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::function<void()> job_;
  bool quit_ = false;
  std::thread t_;
};

// Threads that spin for as long as they live: the other load of a shared machine.
class Spinners {
 public:
  explicit Spinners(int n) {
    for (int i = 0; i < n; ++i)
      ts_.emplace_back([this] {
        volatile uint64_t x = 0;
        while (!stop_.load(std::memory_order_relaxed)) x = x + 1;
      });
  }
  ~Spinners() {
    stop_ = true;
    for (auto& t : ts_) t.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> ts_;
};

// range(0): 0 = the benchmark's thread, 1 = a second std::thread; range(1): OpenMP threads
// (0 = the default, omp_get_num_procs()); range(2): spinning threads beside the run.
void BM_TrainStep(benchmark::State& state) {
  const bool on_worker = state.range(0) == 1;
  const int threads = state.range(1) > 0 ? static_cast<int>(state.range(1)) : omp_get_num_procs();
  train::Trainer tr(demo_options());
  Spinners load(static_cast<int>(state.range(2)));
  std::unique_ptr<Worker> w;
  if (on_worker) {
    w = std::make_unique<Worker>();
    w->run([&] { omp_set_num_threads(threads); });  // the worker's own nthreads-var
  } else {
    omp_set_num_threads(threads);
  }
  auto step = [&] { benchmark::DoNotOptimize(tr.train_step()); };
  step();  // warm: the OpenMP team, the allocations
  for (auto _ : state) {
    if (on_worker)
      w->run(step);
    else
      step();
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations() * 4 * 64),
                                                  benchmark::Counter::kIsRate);
  state.counters["omp_threads"] = threads;
  omp_set_num_threads(omp_get_num_procs());
}
BENCHMARK(BM_TrainStep)
    ->ArgNames({"worker", "omp", "spinners"})
    ->ArgsProduct({{0, 1}, {1, 0}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(1.0)
    ->UseRealTime();

}  // namespace
