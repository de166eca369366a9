// Weights as the checkpoint stores them (issue 18): decode products on FP8 / BF16 / F32 weights
// against the float32 path and Eigen's own matrix-vector product, a read/copy bandwidth probe
// in the same run, and a reduced DeepSeek-V3 checkpoint in the released layout (open time,
// decode step, bytes touched per token, resident memory). docs/performance.md reads them.
#include <benchmark/benchmark.h>

#include <cstring>
#include <filesystem>
#include <memory>

#include "bench/bandwidth.h"
#include "reference/io/mapped_file.h"
#include "reference/model/compact_gemm.h"
#include "reference/model/compact_linear.h"
#include "reference/model/model.h"
#include "reference/model/sampling.h"
#include "reference/model/synthetic_checkpoint.h"

namespace {
using namespace dsv3;
using model::CompactMatrix;
using model::WeightFormat;
namespace fs = std::filesystem;

// One V3 routed expert's gate_proj: [moe_intermediate 2048, hidden 7168].
constexpr int64_t kOut = 2048, kIn = 7168;

const Mat& weight_f32() {
  static const Mat w = [] {
    model::Rng rng(3);
    Mat m(kOut, kIn);
    for (Eigen::Index i = 0; i < m.size(); ++i)
      m.data()[i] = static_cast<float>(rng.uniform() - 0.5) * 0.05f;
    return m;
  }();
  return w;
}

// The same matrix stored as f: BF16 by truncation, FP8 with 128x128 blocks scaled to 448.
const CompactMatrix& weight(WeightFormat f) {
  static std::map<WeightFormat, CompactMatrix> cache;
  auto it = cache.find(f);
  if (it != cache.end()) return it->second;
  const Mat& w = weight_f32();
  std::vector<uint8_t> bytes(static_cast<size_t>(w.size()) * model::element_bytes(f));
  std::vector<float> scales;
  if (f == WeightFormat::kF32) {
    std::memcpy(bytes.data(), w.data(), bytes.size());
  } else if (f == WeightFormat::kBF16) {
    for (Eigen::Index i = 0; i < w.size(); ++i) {
      uint32_t b;
      std::memcpy(&b, w.data() + i, 4);
      const uint16_t h = static_cast<uint16_t>(b >> 16);
      std::memcpy(&bytes[2 * i], &h, 2);
    }
  } else {
    const int64_t bc = kIn / 128;
    scales.assign(static_cast<size_t>((kOut / 128) * bc), 0.025f / 448.0f);
    for (int64_t r = 0; r < kOut; ++r)
      for (int64_t c = 0; c < kIn; ++c)
        bytes[r * kIn + c] = model::to_e4m3(w(r, c) / scales[(r / 128) * bc + c / 128]);
  }
  return cache.emplace(f, model::make_compact(f, kOut, kIn, std::move(bytes), std::move(scales)))
      .first->second;
}

void weight_rate(benchmark::State& state, double bytes) {
  state.counters["weight_GB/s"] = benchmark::Counter(
      bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// Eigen's matrix-vector product on float32 weights.
void BM_MatvecEigen(benchmark::State& state) {
  const Mat& w = weight_f32();
  Vec x = Vec::Random(kIn), y(kOut);
  for (auto _ : state) {
    y.noalias() = w * x;
    benchmark::DoNotOptimize(y.data());
  }
  weight_rate(state, 4.0 * kOut * kIn);
}

// The float32 model's few-row product (model::matmul_wt: one dot per weight row).
void BM_MatvecF32Model(benchmark::State& state) {
  const Mat& w = weight_f32();
  Mat x = Mat::Random(1, kIn);
  for (auto _ : state) benchmark::DoNotOptimize(model::matmul_wt(x, w));
  weight_rate(state, 4.0 * kOut * kIn);
}

// The native model's decode product before matvec_eigen_order (issue 18's first step): each
// weight row decoded into a float32 row, then Eigen's dot, rows split over the threads.
void BM_MatvecCompact(benchmark::State& state, WeightFormat f) {
  const CompactMatrix& w = weight(f);
  RowVec x = RowVec::Random(kIn);
  Vec y(kOut);
  for (auto _ : state) {
#pragma omp parallel
    {
      RowVec row(kIn);
#pragma omp for schedule(static)
      for (int64_t o = 0; o < kOut; ++o) {
        w.decode_row(o, row.data());
        y[o] = row.dot(x);
      }
    }
    benchmark::DoNotOptimize(y.data());
  }
  weight_rate(state, static_cast<double>(w.nbytes()));
}

// The decode path today: weights decoded 8 at a time in registers, 4 rows sharing the loads of x,
// in Eigen's order (bit-identical to the float32 model; what matmul_wt runs for one row).
void BM_MatvecEigenOrder(benchmark::State& state, WeightFormat f) {
  const CompactMatrix& w = weight(f);
  Vec x = Vec::Random(kIn), y(kOut);
  for (auto _ : state) {
    model::matvec_eigen_order(w, x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  weight_rate(state, static_cast<double>(w.nbytes()));
}

// Decode in registers, 8 weights at a time, never writing a float32 row.
void BM_MatvecFused(benchmark::State& state, WeightFormat f) {
  const CompactMatrix& w = weight(f);
  Vec x = Vec::Random(kIn), y(kOut);
  for (auto _ : state) {
    model::fused_matvec(w, x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  weight_rate(state, static_cast<double>(w.nbytes()));
}

// Prefill of 256 tokens through one V3 expert's gate_proj [2048, 7168]: Eigen's GEMM on float32
// weights (the ceiling), the compact path slice by slice (matmul_wt_blocked), and the first
// compact form (the whole W dequantized into a float32 temporary, then the same GEMM).
constexpr int64_t kPrefillTokens = 256;
void gemm_rate(benchmark::State& state) {
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * kPrefillTokens * kOut * kIn,
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
}
void BM_PrefillEigen(benchmark::State& state) {
  const Mat& w = weight_f32();
  Mat x = Mat::Random(kPrefillTokens, kIn), y(kPrefillTokens, kOut);
  for (auto _ : state) {
    y.noalias() = x * w.transpose();
    benchmark::DoNotOptimize(y.data());
  }
  gemm_rate(state);
}
void BM_PrefillBlocked(benchmark::State& state, WeightFormat f) {
  const CompactMatrix& w = weight(f);
  Mat x = Mat::Random(kPrefillTokens, kIn);
  for (auto _ : state) benchmark::DoNotOptimize(model::matmul_wt_blocked(x, w));
  gemm_rate(state);
}
// The K-blocked form (compact_gemm.h): Eigen's own GEMM kernel, W decoded one [192, kc] block
// at a time, bit-identical to BM_PrefillEigen's product on the dequantized W.
void BM_PrefillKBlocked(benchmark::State& state, WeightFormat f) {
  const CompactMatrix& w = weight(f);
  Mat x = Mat::Random(kPrefillTokens, kIn);
  for (auto _ : state) benchmark::DoNotOptimize(model::matmul_wt_kblocked(x, w));
  gemm_rate(state);
}
void BM_PrefillWholeF32(benchmark::State& state, WeightFormat f) {
  const CompactMatrix& w = weight(f);
  Mat x = Mat::Random(kPrefillTokens, kIn), y(kPrefillTokens, kOut);
  for (auto _ : state) {
    y.noalias() = x * w.to_f32().transpose();
    benchmark::DoNotOptimize(y.data());
  }
  gemm_rate(state);
}

// Read bandwidth: sum 256 MB of floats (what streaming weights needs); copy is in bandwidth.h.
void BM_ReadBandwidth(benchmark::State& state) {
  const size_t n = (256u << 20) / 4;
  Vec a = Vec::Ones(static_cast<Eigen::Index>(n));
  for (auto _ : state) benchmark::DoNotOptimize(a.sum());
  state.counters["GB/s"] = benchmark::Counter(
      4.0 * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// A reduced DeepSeek-V3 in the released layout, about the size of the "small" config
// (model::synthetic_small(), what `dsv3 export synthetic-v3` writes by default): written once
// into the temp folder and reused.
const std::string& synthetic() {
  static const std::string dir = [] {
    const fs::path p = fs::temp_directory_path() / "dsv3-bench-synthetic-v3-small";
    if (!fs::exists(p / "model.safetensors.index.json")) {
      model::write_synthetic_v3(p.string(), model::synthetic_small());
    }
    return p.string();
  }();
  return dir;
}

// Prefill of 256 tokens on the synthetic checkpoint (a fresh cache each time): f32, and native
// with each form of matmul_wt for many rows (K-blocked, or the whole W dequantized first).
void BM_PrefillSynthetic(benchmark::State& state, model::WeightMode mode,
                         model::PrefillForm form = model::PrefillForm::kKBlocked) {
  model::set_prefill_form(form);
  const model::Model m = model::Model::load(synthetic(), 0, mode);
  const int64_t T = 256;
  model::Rng rng(2);
  std::vector<int32_t> ids(T);
  for (auto& id : ids) id = static_cast<int32_t>(rng.next() % m.config().vocab_size);
  for (auto _ : state) {
    auto cache = m.new_cache(model::AttnImpl::kAbsorbed);
    benchmark::DoNotOptimize(m.forward(ids, cache));
  }
  model::set_prefill_form(model::PrefillForm::kKBlocked);
  state.SetItemsProcessed(state.iterations() * T);
}

// Opening: native maps the shards and parses their headers; f32 converts every tensor.
void BM_OpenSynthetic(benchmark::State& state, model::WeightMode mode) {
  const std::string& dir = synthetic();
  for (auto _ : state) benchmark::DoNotOptimize(model::Model::load(dir, 0, mode));
}

// One decode step at context 256; counters: bytes of weights read per token (in their storage
// format) and this process's resident memory (anonymous and mapped-file pages).
// keep_copies = false: native weights dequantize the router gates and kv_b_proj again for every
// token, as before NativeWeights kept their float32 copies.
void BM_DecodeSynthetic(benchmark::State& state, model::WeightMode mode,
                        model::MatvecForm form = model::MatvecForm::kInRegisters,
                        bool keep_copies = true) {
  model::set_matvec_form(form);
  model::NativeWeights::set_keep_f32_copies(keep_copies);
  const model::Model m = model::Model::load(synthetic(), 0, mode);
  const int64_t context = 256;
  auto cache = m.new_cache(model::AttnImpl::kAbsorbed);
  model::Rng rng(1);
  std::vector<int32_t> prefix(context);
  for (auto& id : prefix) id = static_cast<int32_t>(rng.next() % m.config().vocab_size);
  m.forward(prefix, cache);
  int32_t id[1] = {5};
  // Bytes read by one token, measured on a native copy (the same routing as either mode).
  const model::Model probe = model::Model::load(synthetic(), 0, model::WeightMode::kNative);
  auto pc = probe.new_cache(model::AttnImpl::kAbsorbed);
  probe.forward(prefix, pc);
  probe.native()->reset_reads();
  probe.forward(id, pc);
  // The router gates and kv_b_proj are read in float32 in both modes (native: their float32
  // copies, NativeWeights::f32); every other matrix as stored (native) or as float32 (f32).
  const double copies = static_cast<double>(probe.native()->f32_bytes_read());
  double stored = copies, as_f32 = copies;
  for (const auto& [name, w] : probe.native()->matrices) {
    stored += static_cast<double>(w.bytes_read());
    as_f32 += static_cast<double>(w.bytes_read()) / static_cast<double>(w.nbytes()) *
              static_cast<double>(w.rows * w.cols * 4);
  }
  const double touched = mode == model::WeightMode::kNative ? stored : as_f32;
  for (auto _ : state) {
    m.forward(id, cache);
    cache.truncate(context);
  }
  const io::ProcessMemory mem = io::process_memory();
  state.counters["touched_MB"] = touched / 1e6;
  state.counters["weight_GB/s"] = benchmark::Counter(
      touched, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["rss_anon_MB"] = static_cast<double>(mem.rss_anon) / 1e6;
  state.counters["rss_file_MB"] = static_cast<double>(mem.rss_file) / 1e6;
  model::set_matvec_form(model::MatvecForm::kInRegisters);
  model::NativeWeights::set_keep_f32_copies(true);
}

BENCHMARK(BM_ReadBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(dsv3::bench::BM_CopyBandwidth)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MatvecEigen)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_MatvecF32Model)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MatvecCompact, f32, WeightFormat::kF32)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_MatvecCompact, bf16, WeightFormat::kBF16)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_MatvecCompact, fp8, WeightFormat::kFP8)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_MatvecEigenOrder, f32, WeightFormat::kF32)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_MatvecEigenOrder, bf16, WeightFormat::kBF16)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_MatvecEigenOrder, fp8, WeightFormat::kFP8)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_MatvecFused, f32, WeightFormat::kF32)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_MatvecFused, bf16, WeightFormat::kBF16)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_MatvecFused, fp8, WeightFormat::kFP8)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_PrefillEigen)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_PrefillBlocked, bf16, WeightFormat::kBF16)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_PrefillBlocked, fp8, WeightFormat::kFP8)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_PrefillWholeF32, fp8, WeightFormat::kFP8)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_PrefillKBlocked, f32, WeightFormat::kF32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_PrefillKBlocked, bf16, WeightFormat::kBF16)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_PrefillKBlocked, fp8, WeightFormat::kFP8)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_OpenSynthetic, f32, model::WeightMode::kF32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_OpenSynthetic, native, model::WeightMode::kNative)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_PrefillSynthetic, f32, model::WeightMode::kF32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_PrefillSynthetic, native_whole_f32, model::WeightMode::kNative,
                  model::PrefillForm::kWholeF32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_PrefillSynthetic, native, model::WeightMode::kNative)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_DecodeSynthetic, f32, model::WeightMode::kF32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_DecodeSynthetic, native_row_decoded, model::WeightMode::kNative,
                  model::MatvecForm::kRowDecoded)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_DecodeSynthetic, native_no_f32_copies, model::WeightMode::kNative,
                  model::MatvecForm::kInRegisters, false)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_DecodeSynthetic, native, model::WeightMode::kNative)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
