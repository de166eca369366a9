// Cost of FP8 training (issue 14, "Benchmarks"; paper section 3.3, Fig. 6): every GEMM kind of
// one Linear, y = x W^T, in emulated FP8 beside the float32 Eigen GEMM of the same shape, and the
// whole forward + backward of the tiny training config, in one run. Each FP8 benchmark reports
// `x_fp32`, its time over the float32 counterpart's (timed in the same process, same threads):
//
//   Fprop    y  = x W^T    K = in       fp32: x * W^T      fp8: 1 x g tiles of x, g x g blocks of W
//   Dgrad    dx = dy W     K = out      fp32: dy * W       fp8: 1 x g tiles of dy, W^T's blocks
//   Wgrad    dW = dy^T x   K = tokens   fp32: dy^T * x     fp8: g x 1 tiles of dy and of x
//
// For each kind: `fp8` is the whole call as the trainer makes it (quantize, GEMM, BF16 output);
// `gemm` the emulated tensor-core GEMM alone on operands quantized beforehand; `bf16` the BF16
// baseline (operands rounded, float32 accumulation). The quantization and re-tiling steps are
// timed alone (`quant/...`), against the fp32 Fprop of the same shape. items/s is FLOP/s (2 M N K)
// for the GEMMs, to set beside bench_fp8's h100_nc128.
// Shapes are those of `tiny-configs/tiny-train.json` at B = 8, T = 128 (1,024 tokens), plus one
// wide layer where 1 x 128 tiles are finer than a row. Threads: OMP_NUM_THREADS, never set here.
//   OMP_NUM_THREADS=1 build/bench/bench_fp8_train --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "reference/fp8/analysis.h"
#include "reference/fp8/format.h"
#include "reference/fp8/gemm.h"
#include "reference/fp8/quant.h"
#include "reference/model/config.h"
#include "reference/model/rope.h"
#include "reference/model/sampling.h"
#include "reference/model/weights.h"
#include "reference/train/fp8_compare.h"
#include "reference/train/fp8_linear.h"
#include "reference/train/objective.h"
#include "reference/train/trainer.h"

namespace {

using namespace dsv3;
using Clock = std::chrono::steady_clock;

[[maybe_unused]] const bool kContext = [] {
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));
  return true;
}();

// One Linear: n tokens, in -> out.
struct LinearShape {
  const char* name;
  int64_t n, in, out;
};
constexpr LinearShape kShapes[] = {
    {"o_proj", 1024, 128, 128},      // attention output of every token: the common tiny shape
    {"expert_up", 128, 128, 64},     // a routed expert: about N * top-k / E = 128 tokens
    {"dense_down", 1024, 384, 128},  // the dense FFN's down_proj: the step's largest in-K
    {"wide", 1024, 1024, 1024},      // 8 tiles per row: fine-grained scaling at work
};
enum Kind { kFprop, kDgrad, kWgrad };
const char* kKindNames[] = {"Fprop", "Dgrad", "Wgrad"};

train::LowPrecision fp8_mode(int tile = fp8::kTile) {
  train::LowPrecision p;
  p.precision = train::Precision::kFp8;
  p.tile = tile;
  return p;
}

struct Operands {
  Mat x, w, dy;  // x [n, in], W [out, in], dy [n, out]
  train::LowPrecision p = fp8_mode();
  // Quantized as the three GEMMs take them (gemm form a b^T).
  fp8::QMatrix fprop_a, fprop_b, dgrad_a, dgrad_b, wgrad_a, wgrad_b;
  explicit Operands(const LinearShape& s)
      : x(fp8::random_matrix(s.n, s.in, fp8::Dist::kRandn, 1)),
        w(fp8::random_matrix(s.out, s.in, fp8::Dist::kRandn, 2) * 0.05f),
        dy(fp8::random_matrix(s.n, s.out, fp8::Dist::kRandn, 3) * 1e-3f) {
    fprop_a = train::quantize_rows(x, p, fp8::Format::kE4M3);
    fprop_b = train::quantize_blocks(w, p);
    dgrad_a = train::quantize_rows(dy, p, fp8::Format::kE4M3);
    dgrad_b = train::quantize_blocks(w.transpose(), p);
    wgrad_a = train::transpose(fp8::quantize(dy, p.tile, 1));
    wgrad_b = train::transpose(train::retile_columns(fprop_a, p));
  }
};

const Operands& ops(int s) {
  static std::map<int, std::unique_ptr<Operands>> cache;
  auto& o = cache[s];
  if (!o) o = std::make_unique<Operands>(kShapes[s]);
  return *o;
}

// Seconds per call of f: doubled repeat counts until one batch takes 50 ms.
double seconds_per_call(const std::function<void()>& f) {
  f();
  for (int64_t n = 1;; n *= 2) {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) f();
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (dt > 0.05) return dt / static_cast<double>(n);
  }
}

Mat fp32_gemm(const Operands& o, Kind k) {
  switch (k) {
    case kFprop:
      return o.x * o.w.transpose();
    case kDgrad:
      return o.dy * o.w;
    case kWgrad:
      return o.dy.transpose() * o.x;
  }
  return {};
}

// The float32 GEMM of (shape, kind), timed once per process.
double fp32_seconds(int s, Kind k) {
  static std::map<std::pair<int, int>, double> cache;
  auto it = cache.find({s, k});
  if (it != cache.end()) return it->second;
  const Operands& o = ops(s);
  const double t = seconds_per_call([&] {
    Mat y = fp32_gemm(o, k);
    benchmark::DoNotOptimize(y.data());
  });
  return cache[{s, k}] = t;
}

double flops(int s) {
  const LinearShape& sh = kShapes[s];
  return 2.0 * static_cast<double>(sh.n * sh.in * sh.out);  // the same for every kind
}

// Runs the loop, then sets items/s (FLOP/s) and x_fp32 against (s, ref).
template <class F>
void timed(benchmark::State& st, int s, Kind ref, double work, F&& body) {
  const auto t0 = Clock::now();
  for (auto _ : st) body();
  const double per = std::chrono::duration<double>(Clock::now() - t0).count() /
                     static_cast<double>(std::max<int64_t>(1, st.iterations()));
  if (work > 0) st.SetItemsProcessed(static_cast<int64_t>(work * st.iterations()));
  st.counters["x_fp32"] = per / fp32_seconds(s, ref);
}

void BM_Fp32(benchmark::State& st, int s, Kind k) {
  const Operands& o = ops(s);
  timed(st, s, k, flops(s), [&] {
    Mat y = fp32_gemm(o, k);
    benchmark::DoNotOptimize(y.data());
  });
}

void BM_Bf16(benchmark::State& st, int s, Kind k) {
  const Operands& o = ops(s);
  train::LowPrecision p;
  p.precision = train::Precision::kBf16;
  auto r = [](const Mat& m) { return m.unaryExpr([](float v) { return fp8::bf16_round(v); }); };
  timed(st, s, k, flops(s), [&] {
    Mat y;
    if (k == kFprop) y = train::lp_linear_fwd(o.x, o.w, p);
    if (k == kDgrad) y = r(r(o.dy) * r(o.w));
    if (k == kWgrad) y = r(o.dy).transpose() * r(o.x);
    benchmark::DoNotOptimize(y.data());
  });
}

// The whole FP8 call as the trainer makes it: quantization, GEMM, output rounding.
void BM_Fp8(benchmark::State& st, int s, Kind k) {
  const Operands& o = ops(s);
  timed(st, s, k, flops(s), [&] {
    Mat y = k == kFprop   ? train::fp8_fprop(o.x, o.w, o.p)
            : k == kDgrad ? train::fp8_dgrad(o.dy, o.w, o.p)
                          : train::fp8_wgrad(o.dy, o.x, o.p);
    benchmark::DoNotOptimize(y.data());
  });
}

// The emulated tensor-core GEMM alone (H100 model, N_C = 128) on operands quantized beforehand.
void BM_Fp8Gemm(benchmark::State& st, int s, Kind k) {
  const Operands& o = ops(s);
  const fp8::QMatrix& a = k == kFprop ? o.fprop_a : k == kDgrad ? o.dgrad_a : o.wgrad_a;
  const fp8::QMatrix& b = k == kFprop ? o.fprop_b : k == kDgrad ? o.dgrad_b : o.wgrad_b;
  const fp8::GemmOptions g = train::gemm_options(o.p);
  timed(st, s, k, flops(s), [&] {
    Mat y = fp8::gemm(a, b, g);
    benchmark::DoNotOptimize(y.data());
  });
}

// Quantization and re-tiling steps, each alone; x_fp32 against the fp32 Fprop of the shape.
enum Quant { kXTiles, kWBlocks, kWtBlocks, kDyTiles, kDyColumns, kXRetile, kTranspose };
void BM_Quant(benchmark::State& st, int s, Quant q) {
  const Operands& o = ops(s);
  timed(st, s, kFprop, 0, [&] {
    fp8::QMatrix r;
    switch (q) {
      case kXTiles:  // Fprop's x, 1 x g
        r = train::quantize_rows(o.x, o.p, fp8::Format::kE4M3);
        break;
      case kWBlocks:  // Fprop's W, g x g
        r = train::quantize_blocks(o.w, o.p);
        break;
      case kWtBlocks:  // Dgrad's W^T, g x g
        r = train::quantize_blocks(o.w.transpose(), o.p);
        break;
      case kDyTiles:  // Dgrad's dy, 1 x g
        r = train::quantize_rows(o.dy, o.p, fp8::Format::kE4M3);
        break;
      case kDyColumns:  // Wgrad's dy, g x 1
        r = fp8::quantize(o.dy, o.p.tile, 1);
        break;
      case kXRetile:  // Wgrad's x: the forward's 1 x g copy dequantized, re-quantized g x 1
        r = train::retile_columns(o.fprop_a, o.p);
        break;
      case kTranspose:  // codes and scales transposed so that tokens run along K
        r = train::transpose(o.fprop_a);
        break;
    }
    benchmark::DoNotOptimize(r.codes.data());
  });
}

void register_linears() {
  for (int s = 0; s < static_cast<int>(std::size(kShapes)); ++s) {
    for (int k = 0; k < 3; ++k) {
      const std::string tag = std::string(kShapes[s].name) + "/" + kKindNames[k];
      const Kind kind = static_cast<Kind>(k);
      for (auto [name, fn] : {std::pair{"fp32", &BM_Fp32},
                              {"bf16", &BM_Bf16},
                              {"fp8", &BM_Fp8},
                              {"gemm", &BM_Fp8Gemm}})
        benchmark::RegisterBenchmark((std::string(name) + "/" + tag).c_str(), fn, s, kind)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    }
    const char* qnames[] = {"x_1xg",  "W_gxg",        "Wt_gxg",   "dy_1xg",
                            "dy_gx1", "x_retile_gx1", "transpose"};
    for (int q = 0; q <= kTranspose; ++q)
      benchmark::RegisterBenchmark(
          (std::string("quant/") + kShapes[s].name + "/" + qnames[q]).c_str(), BM_Quant, s,
          static_cast<Quant>(q))
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
  }
}

// ---- The whole step: forward + backward of tiny-train at B = 8, T = 128 ----------------------

struct Step {
  model::Config c;
  model::RopeTable rope;
  train::Objective obj;
  model::ModelWeights w, grad;
  train::Batch batch;
  Step() {
    c = model::resolve_config(model::tiny_configs_dir() + "/tiny-train.json");
    rope = model::make_rope_table(c);
    w = model::init_weights(c, 1, train::default_init_std(c.hidden_size));
    grad = train::zeros_like(c, w);
    model::Rng rng(1);
    batch = {8, 128, std::vector<int32_t>(8 * 128)};
    for (int32_t& id : batch.ids) id = static_cast<int32_t>(rng.next() % c.vocab_size);
  }
  void run(const train::LowPrecision& p) {
    train::LossParts l = train::loss_and_grad<float>(c, rope, w, batch, obj, &grad, &p);
    benchmark::DoNotOptimize(l.total);
  }
};

Step& step() {
  static Step s;
  return s;
}

double fp32_step_seconds() {
  static const double t = seconds_per_call([] { step().run(train::LowPrecision{}); });
  return t;
}

void BM_Step(benchmark::State& st, const std::string& mode) {
  Step& s = step();
  const train::LowPrecision p = train::parse_compare_mode(mode).precision;
  const auto t0 = Clock::now();
  for (auto _ : st) s.run(p);
  const double per = std::chrono::duration<double>(Clock::now() - t0).count() /
                     static_cast<double>(std::max<int64_t>(1, st.iterations()));
  st.counters["x_fp32"] = per / fp32_step_seconds();
  st.counters["tok/s"] = benchmark::Counter(static_cast<double>(s.batch.B * s.batch.T),
                                            benchmark::Counter::kIsIterationInvariantRate);
}

void register_steps() {
  for (const char* m : {"fp32", "bf16", "fp8", "fp8:t32", "fp8:tensor", "fp8:no-promote"})
    benchmark::RegisterBenchmark((std::string("step/tiny-train/") + m).c_str(), BM_Step,
                                 std::string(m))
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(1.0);
}

[[maybe_unused]] const bool kRegistered = [] {
  register_linears();
  register_steps();
  return true;
}();

}  // namespace
