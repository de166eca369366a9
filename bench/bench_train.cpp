// Training-step speed and memory of the reference trainer (reference/train/), float32:
//   - tokens/s of one full step as Trainer::train_step runs it: zero the gradient buffer,
//     loss_and_grad (forward + backward), grad_norm, adamw_step with the clip scale folded in,
//     update_biases;
//   - each part alone in the same run, so the shares can be read off: forward only
//     (loss_and_grad without a gradient), forward + backward, zeroing the gradient buffer, and
//     the optimizer (gradient norm + clipped AdamW + bias update);
//   - a plain Eigen GEMM of the models' shapes, for the GFLOP/s this machine reaches;
//   - bytes by part: weights, gradient, AdamW moments, and the peak allocated above them while
//     each part runs (docs/performance.md, "Training step").
// Shapes: tiny B=8, T=128; small (300M parameters) B=2, T=128. Thread count: the environment's
// OMP_NUM_THREADS, never set here; times are wall-clock because the work runs on OpenMP threads.
//   OMP_NUM_THREADS=2 build/bench/bench_train --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <omp.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <string>

#include "reference/model/config.h"
#include "reference/model/rope.h"
#include "reference/model/sampling.h"
#include "reference/model/weights.h"
#include "reference/train/objective.h"
#include "reference/train/optimizer.h"
#include "reference/train/trainer.h"

// ---- Allocation tracking ---------------------------------------------------------------------
//
// Every heap allocation of the process is counted, so that the bytes a part of the step holds
// can be read as the difference of two counts. Two layers need replacing:
//   - the C allocator (malloc, free and friends), because Eigen allocates every matrix (the
//     weights, gradients, moments and activations) with std::malloc, not operator new;
//   - the global operator new / delete in all their forms, so C++ allocations take the same
//     counted route whatever the standard library's own operator new does.
// The replacements forward to glibc's allocator through its exported __libc_* entry points, so
// the allocator itself is unchanged. Bytes are what malloc_usable_size reports, the same value
// on allocation and release, so the count always returns to its level (the request rounded up
// to the allocator's granularity: within 16 bytes for small blocks, a page for large ones).
namespace memtrack {

std::atomic<int64_t> g_current{0};  // bytes allocated now
std::atomic<int64_t> g_peak{0};     // the most g_current reached since the last start_window

void on_alloc(void* p) {
  if (!p) return;
  const auto n = static_cast<int64_t>(malloc_usable_size(p));
  const int64_t now = g_current.fetch_add(n, std::memory_order_relaxed) + n;
  int64_t seen = g_peak.load(std::memory_order_relaxed);
  // Raise the peak unless another thread already raised it past `now`.
  while (now > seen && !g_peak.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
  }
}

void on_free(void* p) {
  if (p)
    g_current.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
}

int64_t current() {
  return g_current.load(std::memory_order_relaxed);
}

// Starts a new peak measurement from the bytes held now, and returns them.
int64_t start_window() {
  const int64_t now = current();
  g_peak.store(now, std::memory_order_relaxed);
  return now;
}

// The peak since start_window, above the level it returned.
int64_t window_peak(int64_t start) {
  return g_peak.load(std::memory_order_relaxed) - start;
}

}  // namespace memtrack

extern "C" {
// glibc's own allocator, exported for exactly this use (wrapping malloc).
void* __libc_malloc(size_t n);
void* __libc_calloc(size_t count, size_t n);
void* __libc_realloc(void* p, size_t n);
void* __libc_memalign(size_t align, size_t n);
void __libc_free(void* p);

void* malloc(size_t n) noexcept {
  void* p = __libc_malloc(n);
  memtrack::on_alloc(p);
  return p;
}

void* calloc(size_t count, size_t n) noexcept {
  void* p = __libc_calloc(count, n);
  memtrack::on_alloc(p);
  return p;
}

void* realloc(void* p, size_t n) noexcept {
  const auto old = static_cast<int64_t>(p ? malloc_usable_size(p) : 0);
  void* q = __libc_realloc(p, n);
  // On failure (null for n > 0) the old block is still there and nothing changed; realloc(p, 0)
  // frees p and returns null.
  if (q || n == 0) {
    memtrack::g_current.fetch_sub(old, std::memory_order_relaxed);
    memtrack::on_alloc(q);
  }
  return q;
}

void free(void* p) noexcept {
  memtrack::on_free(p);
  __libc_free(p);
}

void* memalign(size_t align, size_t n) noexcept {
  void* p = __libc_memalign(align, n);
  memtrack::on_alloc(p);
  return p;
}

void* aligned_alloc(size_t align, size_t n) noexcept {
  return memalign(align, n);
}

int posix_memalign(void** out, size_t align, size_t n) noexcept {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  void* p = memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

void* valloc(size_t n) noexcept {
  return memalign(4096, n);
}

void* pvalloc(size_t n) noexcept {
  return memalign(4096, (n + 4095) / 4096 * 4096);
}
}  // extern "C"

namespace {

// operator new: the standard's loop (call the new-handler until memory comes or it gives up).
void* new_bytes(std::size_t n, std::size_t align) {
  if (n == 0) n = 1;  // distinct non-null pointers for zero-sized requests
  for (;;) {
    void* p = align > __STDCPP_DEFAULT_NEW_ALIGNMENT__ ? memalign(align, n) : malloc(n);
    if (p) return p;
    std::new_handler handler = std::get_new_handler();
    if (!handler) throw std::bad_alloc();
    handler();
  }
}

void* new_bytes_nothrow(std::size_t n, std::size_t align) noexcept {
  try {
    return new_bytes(n, align);
  } catch (...) {
    return nullptr;
  }
}

constexpr std::size_t kPlain = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

}  // namespace

void* operator new(std::size_t n) {
  return new_bytes(n, kPlain);
}
void* operator new[](std::size_t n) {
  return new_bytes(n, kPlain);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return new_bytes_nothrow(n, kPlain);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return new_bytes_nothrow(n, kPlain);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return new_bytes(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return new_bytes(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return new_bytes_nothrow(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return new_bytes_nothrow(n, static_cast<std::size_t>(a));
}
// Every delete form releases through free: the size and alignment hints are not needed, since
// the tracked size is the allocator's own (malloc_usable_size).
void operator delete(void* p) noexcept {
  free(p);
}
void operator delete[](void* p) noexcept {
  free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  free(p);
}

// ---- The benchmarks --------------------------------------------------------------------------

namespace {

using namespace dsv3;

struct Shape {
  const char* name;
  int64_t B, T;
};
constexpr Shape kShapes[] = {{"tiny", 8, 128}, {"small", 2, 128}};

// Process-wide setup before any benchmark: the allocator policy `dsv3 train` runs under (the
// Trainer constructor sets it: freed blocks stay in the heap for the next step instead of going
// back to the kernel), and the thread count in the context header (the bench never sets it).
[[maybe_unused]] const bool kProcessSetUp = [] {
  mallopt(M_MMAP_THRESHOLD, 512 << 20);  // the values of Trainer::Trainer
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));
  return true;
}();

// Multiply-adds of one forward of the objective as loss_and_grad computes it: the linear layers
// of every row (routed experts: the top-k ones only), the full n x n score and value products
// of each head (the causal mask is applied after the product), the vocabulary head of the main
// model and of each MTP depth. The backward does two products per forward product (the input's
// and the weight's gradient), so a step is 3x these.
double forward_macs(const model::Config& c, int64_t B, int64_t T) {
  const double d = static_cast<double>(c.hidden_size),
               H = static_cast<double>(c.num_attention_heads);
  const double dqk = static_cast<double>(c.qk_head_dim()), dv = static_cast<double>(c.v_head_dim);
  const double dc = static_cast<double>(c.kv_lora_rank),
               dr = static_cast<double>(c.qk_rope_head_dim);
  const double dn = static_cast<double>(c.qk_nope_head_dim), V = static_cast<double>(c.vocab_size);
  const double qr = static_cast<double>(c.q_lora_rank);
  const double attn_row = (qr > 0 ? d * qr + qr * H * dqk : d * H * dqk) + d * (dc + dr) +
                          dc * H * (dn + dv) + H * dv * d;
  const double dense_row = 3 * d * static_cast<double>(c.intermediate_size);
  const double moe_row = d * static_cast<double>(c.n_routed_experts) +
                         3 * d * static_cast<double>(c.moe_intermediate_size) *
                             static_cast<double>(c.num_experts_per_tok + c.n_shared_experts);
  // One block over B sequences of n tokens.
  auto block = [&](int64_t n, bool moe) {
    const double rows = static_cast<double>(B * n), nn = static_cast<double>(n * n);
    return rows * (attn_row + (moe ? moe_row : dense_row)) +
           static_cast<double>(B) * H * nn * (dqk + dv);
  };
  double macs = static_cast<double>(B * T) * d * V;  // the main head
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) macs += block(T, c.is_moe_layer(l));
  for (int64_t k = 1; k <= c.num_nextn_predict_layers; ++k)  // eh_proj, the block, the shared head
    macs += static_cast<double>(B * (T - k)) * (2 * d * d + d * V) +
            block(T - k, c.n_routed_experts > 0);
  return macs;
}

// One config's state, shared by its benchmarks and built on first use. The weights change as
// the optimizer benchmarks run; the work of a step does not depend on their values.
struct Run {
  Shape shape{};
  model::Config c;
  model::RopeTable rope;
  train::Objective obj;     // the trainer's defaults: λ = 0.3, α = 1e-4, loss-free balancing
  train::TrainOptions opt;  // lr, clip, AdamW and γ defaults of `dsv3 train`
  model::ModelWeights w;
  train::AdamWState adam;
  train::Batch batch;
  // One real gradient and the loss parts of its forward, for the optimizer benchmark.
  model::ModelWeights grad0;
  train::LossParts loss0;
  int64_t weight_bytes = 0, grad_bytes = 0, adam_bytes = 0, params = 0;
  double macs = 0;  // forward multiply-adds of the batch
};

Run& get(int i) {
  static std::map<int, std::unique_ptr<Run>> runs;
  std::unique_ptr<Run>& r = runs[i];
  if (r) return *r;
  r = std::make_unique<Run>();
  r->shape = kShapes[i];
  r->c = model::resolve_config(r->shape.name);
  r->rope = model::make_rope_table(r->c);
  // Each part's bytes: what the heap holds more after building it.
  int64_t before = memtrack::current();
  r->w = model::init_weights(r->c, 0, train::default_init_std(r->c.hidden_size));
  r->weight_bytes = memtrack::current() - before;
  before = memtrack::current();
  r->grad0 = train::zeros_like(r->c, r->w);
  r->grad_bytes = memtrack::current() - before;
  before = memtrack::current();
  r->adam = train::adamw_init(r->c, r->w);
  r->adam_bytes = memtrack::current() - before;
  model::visit_model(r->c, r->w, [&](const std::string& name, const auto& t) {
    if (name.find("e_score_correction_bias") == std::string::npos) r->params += t.size();
  });
  const int64_t B = r->shape.B, T = r->shape.T;
  model::Rng rng(1);
  r->batch = {B, T, std::vector<int32_t>(B * T)};
  for (int32_t& id : r->batch.ids) id = static_cast<int32_t>(rng.next() % r->c.vocab_size);
  r->loss0 = train::loss_and_grad<float>(r->c, r->rope, r->w, r->batch, r->obj, &r->grad0);
  r->macs = forward_macs(r->c, B, T);
  return *r;
}

int64_t tokens(const Run& r) {
  return r.shape.B * r.shape.T;
}

void set_rates(benchmark::State& state, const Run& r, double flops) {
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(tokens(r)),
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void set_bytes(benchmark::State& state, const char* name, int64_t bytes) {
  state.counters[name] = benchmark::Counter(
      static_cast<double>(bytes), benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
}

// Runs `iteration` once untimed, after handing the heap's free pages back to the kernel, then
// times it; returns the peak bytes allocated above the level at the start of the timed loop
// (every iteration does the same work, so this is the peak of one). Why the warm-up: whether
// glibc reuses freed pages or returns them (to fault them in again, zeroed, on the next
// allocation) depends on the process's history, since its mmap and trim thresholds move as
// blocks are freed (unless fixed, as kProcessSetUp does); on this VM fresh pages fault in at
// about 0.5 GB/s. So each benchmark measures the steady state of a training loop, whatever ran
// before it.
template <class F>
int64_t timed_loop(benchmark::State& state, F&& iteration) {
  malloc_trim(0);
  iteration();
  const int64_t base = memtrack::start_window();
  for (auto _ : state) iteration();
  return memtrack::window_peak(base);
}

// Forward only: loss_and_grad without a gradient (what validation runs). It still keeps every
// layer's cache until it returns, so its peak is the activations a backward would read.
void BM_TrainForward(benchmark::State& state, int i) {
  Run& r = get(i);
  const int64_t peak = timed_loop(state, [&] {
    train::LossParts loss = train::loss_and_grad<float>(r.c, r.rope, r.w, r.batch, r.obj, nullptr);
    benchmark::DoNotOptimize(loss.total);
  });
  set_rates(state, r, 2 * r.macs);
  set_bytes(state, "peak", peak);
}

// Forward + backward into a gradient buffer allocated beforehand. The backward adds (+=) into
// it, so it is not re-zeroed between iterations: the work does not depend on its values.
void BM_TrainForwardBackward(benchmark::State& state, int i) {
  Run& r = get(i);
  model::ModelWeights grad = train::zeros_like(r.c, r.w);
  const int64_t peak = timed_loop(state, [&] {
    train::LossParts loss = train::loss_and_grad<float>(r.c, r.rope, r.w, r.batch, r.obj, &grad);
    benchmark::DoNotOptimize(loss.total);
  });
  set_rates(state, r, 6 * r.macs);
  set_bytes(state, "peak", peak);
}

// Zeroing the gradient buffer in place, as Trainer::train_step does at the start of each step
// (the buffer lives as long as the trainer; the backward adds into it).
// `serial` is the single-threaded setZero per tensor that train::zero_grad replaced.
void BM_TrainZeroGrad(benchmark::State& state, int i, bool serial) {
  Run& r = get(i);
  model::ModelWeights grad = train::zeros_like(r.c, r.w);
  timed_loop(state, [&] {
    if (serial)
      model::visit_model(r.c, grad, [](const std::string&, auto& t) { t.setZero(); });
    else
      train::zero_grad(r.c, grad);
    benchmark::DoNotOptimize(grad.embed_tokens.data());
  });
}
void BM_TrainZeroGradSerial(benchmark::State& state, int i) {
  BM_TrainZeroGrad(state, i, true);
}
void BM_TrainZeroGradParallel(benchmark::State& state, int i) {
  BM_TrainZeroGrad(state, i, false);
}

// The optimizer alone, as Trainer::train_step runs it: the global gradient norm, AdamW reading
// the gradient times the clip scale (clipping folded into the AdamW pass), the bias update. The
// gradient is a real one (setup's forward + backward) and is only read.
void BM_TrainOptimizer(benchmark::State& state, int i) {
  Run& r = get(i);
  double norm = 0;
  const int64_t peak = timed_loop(state, [&] {
    norm = train::grad_norm(r.c, r.grad0);
    train::adamw_step(r.c, r.w, r.grad0, r.adam, r.opt.lr, r.opt.adamw,
                      train::clip_scale(norm, r.opt.clip));
    train::update_biases(r.c, r.w, r.loss0, r.opt.bias_gamma_at(0));
  });
  state.counters["grad_norm"] = norm;  // before clipping (--clip 1: a norm above 1 is scaled)
  set_bytes(state, "peak", peak);
}

// AdamW alone (clip scale folded in), the trainer's fast form against the element-by-element
// loop it is checked against (bit-identical; Optimizer.FastAdamWEqualsThePlainLoopBitForBit).
void BM_AdamW(benchmark::State& state, int i, bool fast) {
  Run& r = get(i);
  timed_loop(state, [&] {
    if (fast)
      train::adamw_step(r.c, r.w, r.grad0, r.adam, r.opt.lr, r.opt.adamw, 0.5f);
    else
      train::adamw_step_plain(r.c, r.w, r.grad0, r.adam, r.opt.lr, r.opt.adamw, 0.5f);
  });
}
void BM_AdamWPlain(benchmark::State& state, int i) {
  BM_AdamW(state, i, false);
}
void BM_AdamWFast(benchmark::State& state, int i) {
  BM_AdamW(state, i, true);
}

// One full step, in the order of Trainer::train_step (minus its batch read and logging): zero
// the gradient buffer, loss and gradient, norm, AdamW with the clip scale, bias update.
void BM_TrainStep(benchmark::State& state, int i) {
  Run& r = get(i);
  model::ModelWeights grad = train::zeros_like(r.c, r.w);
  const int64_t peak = timed_loop(state, [&] {
    train::zero_grad(r.c, grad);
    train::LossParts loss = train::loss_and_grad<float>(r.c, r.rope, r.w, r.batch, r.obj, &grad);
    const double norm = train::grad_norm(r.c, grad);
    train::adamw_step(r.c, r.w, grad, r.adam, r.opt.lr, r.opt.adamw,
                      train::clip_scale(norm, r.opt.clip));
    train::update_biases(r.c, r.w, loss, r.opt.bias_gamma_at(0));
    benchmark::DoNotOptimize(loss.total);
  });
  set_rates(state, r, 6 * r.macs);
  state.counters["params_M"] = static_cast<double>(r.params) / 1e6;
  set_bytes(state, "weights", r.weight_bytes);
  set_bytes(state, "grad", r.grad_bytes);
  set_bytes(state, "adam_mv", r.adam_bytes);
  set_bytes(state, "peak", peak);  // above weights, moments and gradients: activations
}

// y = x W^T as linear_fwd computes it (row-major x [M, K], W [N, K]), to compare the step's
// GFLOP/s with what Eigen reaches on one product of the models' shapes.
void BM_EigenGemm(benchmark::State& state) {
  const Eigen::Index M = state.range(0), K = state.range(1), N = state.range(2);
  const Mat x = Mat::Random(M, K), w = Mat::Random(N, K);
  Mat y(M, N);
  for (auto _ : state) {
    y.noalias() = x * w.transpose();
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(M * K * N),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}

// The tiny config runs as many iterations as Google Benchmark wants; a small step takes
// seconds, so two timed iterations (after the untimed warm-up of timed_loop).
#define DSV3_TRAIN_BENCH(fn)                                                    \
  BENCHMARK_CAPTURE(fn, tiny, 0)->Unit(benchmark::kMillisecond)->UseRealTime(); \
  BENCHMARK_CAPTURE(fn, small, 1)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2)

DSV3_TRAIN_BENCH(BM_TrainForward);
DSV3_TRAIN_BENCH(BM_TrainForwardBackward);
DSV3_TRAIN_BENCH(BM_TrainZeroGradSerial);
DSV3_TRAIN_BENCH(BM_TrainZeroGradParallel);
DSV3_TRAIN_BENCH(BM_TrainOptimizer);
DSV3_TRAIN_BENCH(BM_AdamWPlain);
DSV3_TRAIN_BENCH(BM_AdamWFast);
DSV3_TRAIN_BENCH(BM_TrainStep);

BENCHMARK(BM_EigenGemm)
    ->ArgNames({"M", "K", "N"})
    ->Args({1024, 64, 320})     // tiny: the vocabulary head over B*T = 1024 rows
    ->Args({256, 1024, 1024})   // small: a d x d projection over B*T = 256 rows
    ->Args({256, 1024, 32768})  // small: the vocabulary head, its largest product
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
