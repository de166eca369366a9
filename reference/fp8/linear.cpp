#include "reference/fp8/linear.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "reference/model/config.h"

namespace dsv3::fp8 {
namespace {

// The checkpoint's own FP8 weight for `name`, or null when it stores none (F32/BF16 tensor,
// missing tensor, or no weight_scale_inv).
std::shared_ptr<QMatrix> stored_fp8(const io::Checkpoint& ckpt, const std::string& name,
                                    const Mat& w) {
  const io::TensorView* t = ckpt.find(name);
  if (!t || (t->dtype != io::DType::kF8E4M3 && t->dtype != io::DType::kF8E5M2)) return nullptr;
  std::string base = name;
  if (base.ends_with(".weight")) base.resize(base.size() - 7);
  const io::TensorView* s = ckpt.find(base + ".weight_scale_inv");
  if (!s) return nullptr;
  if (t->shape.size() != 2 || t->shape[0] != w.rows() || t->shape[1] != w.cols()) {
    throw io::FormatError(
        fmt::format("{}: FP8 tensor '{}' does not have the model's shape [{}, {}]", t->file, name,
                    w.rows(), w.cols()));
  }
  auto q = std::make_shared<QMatrix>();
  q->format = t->dtype == io::DType::kF8E4M3 ? Format::kE4M3 : Format::kE5M2;
  q->rows = t->shape[0];
  q->cols = t->shape[1];
  q->tile_rows = q->tile_cols = kTile;  // weight_scale_inv: one multiplier per 128x128 block
  if (s->shape != std::vector<int64_t>{q->scale_rows(), q->scale_cols()}) {
    throw io::FormatError(fmt::format("{}: '{}' is not [{}, {}]", s->file, s->name, q->scale_rows(),
                                      q->scale_cols()));
  }
  q->codes.assign(t->data, t->data + t->nbytes);
  q->scales = io::to_f32(*s);
  return q;
}

}  // namespace

Fp8Linear::Fp8Linear(Fp8LinearOptions opt, std::shared_ptr<const io::Checkpoint> checkpoint)
    : opt_(opt), checkpoint_(std::move(checkpoint)) {
  if (opt_.scaling == Scaling::kTile && opt_.gemm.accum == Accum::kH100 &&
      (opt_.gemm.promote <= 0 || kTile % opt_.gemm.promote != 0)) {
    throw std::invalid_argument(fmt::format(
        "FP8 linear: tile-wise scales are applied at promotion, so N_C must divide 128 (got {})",
        opt_.gemm.promote));
  }
}

std::shared_ptr<const QMatrix> Fp8Linear::weight(const Mat& w, const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(name);
    if (it != cache_.end() && it->second->rows == w.rows() && it->second->cols == w.cols())
      return it->second;
  }
  std::shared_ptr<const QMatrix> q;
  bool stored = false;
  if (checkpoint_ && opt_.scaling == Scaling::kTile) {
    q = stored_fp8(*checkpoint_, name, w);
    stored = q != nullptr;
  }
  if (!q) {
    q = std::make_shared<QMatrix>(opt_.scaling == Scaling::kTile
                                      ? quantize_weights(w, opt_.weights)
                                      : quantize_per_tensor(w, opt_.weights));
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = cache_.insert_or_assign(name, q);
  (void)it;
  (void)inserted;
  (stored ? from_checkpoint_ : quantized_) += 1;
  return q;
}

Mat Fp8Linear::operator()(const Mat& x, const Mat& w, const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
  }
  if (x.cols() != w.cols()) {
    throw std::invalid_argument(fmt::format("FP8 linear '{}': x is [{}, {}] but W is [{}, {}]",
                                            name, x.rows(), x.cols(), w.rows(), w.cols()));
  }
  const std::shared_ptr<const QMatrix> qw = weight(w, name);
  // Activations are quantized online from the current tokens (1x128 tiles per token).
  const QMatrix qx = opt_.scaling == Scaling::kTile ? quantize_activations(x, opt_.activations)
                                                    : quantize_per_tensor(x, opt_.activations);
  Mat y = gemm(qx, *qw, opt_.gemm);
  if (opt_.bf16_output) y = y.unaryExpr([](float v) { return bf16_round(v); });
  return y;
}

int64_t Fp8Linear::calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_;
}
int64_t Fp8Linear::weights_from_checkpoint() const {
  std::lock_guard<std::mutex> lock(mu_);
  return from_checkpoint_;
}
int64_t Fp8Linear::weights_quantized() const {
  std::lock_guard<std::mutex> lock(mu_);
  return quantized_;
}

LinearHook make_linear_hook(const Fp8LinearOptions& opt,
                            std::shared_ptr<const io::Checkpoint> checkpoint) {
  auto lin = std::make_shared<Fp8Linear>(opt, std::move(checkpoint));
  return [lin](const Mat& x, const Mat& w, const std::string& name) { return (*lin)(x, w, name); };
}

Fp8LinearOptions forward_options(const std::string& accum, int promote) {
  Fp8LinearOptions o;
  o.gemm.accum = parse_accum(accum);
  if (promote < 0 || promote % 32 != 0) {
    throw std::invalid_argument(
        fmt::format("--promote must be 0 or a multiple of 32 (got {})", promote));
  }
  o.gemm.promote = promote;
  if (o.gemm.accum == Accum::kH100 && promote == 0) {
    o.scaling =
        Scaling::kTensor;  // nothing to apply per-tile scales at: per-tensor, fast accumulation
  } else if (o.gemm.accum == Accum::kH100 && kTile % promote != 0) {
    throw std::invalid_argument(
        fmt::format("--promote {} must divide 128 (the scaling tile) or be 0", promote));
  }
  return o;
}

std::shared_ptr<const io::Checkpoint> checkpoint_of(const std::string& model) {
  if (model.empty()) return nullptr;
  const std::string dir = dsv3::model::resolve_model_path(model);
  if (!std::filesystem::is_directory(dir)) return nullptr;
  return std::make_shared<io::Checkpoint>(dir);
}

LinearHook make_forward_hook(const std::string& accum, int promote, const std::string& model) {
  const Fp8LinearOptions o = forward_options(accum, promote);
  return make_linear_hook(o, checkpoint_of(model));
}

std::function<Mat(const Mat& w, const std::string& name)> make_absorbed_weight_hook(
    const std::string& accum, int promote, const std::string& model) {
  const Fp8LinearOptions o = forward_options(accum, promote);
  auto lin = std::make_shared<Fp8Linear>(o, checkpoint_of(model));
  return
      [lin](const Mat& w, const std::string& name) { return lin->weight(w, name)->dequantize(); };
}

std::vector<PrecisionMode> default_precision_modes() {
  std::vector<PrecisionMode> m;
  auto add = [&](std::string label, Accum a, int promote, Scaling s) {
    Fp8LinearOptions o;
    o.gemm = {a, promote};
    o.scaling = s;
    m.push_back({std::move(label), o});
  };
  add("exact accumulation (tile)", Accum::kExact, kTile, Scaling::kTile);
  add("fp32 accumulation (tile)", Accum::kFp32, kTile, Scaling::kTile);
  add("h100 N_C=32 (tile)", Accum::kH100, 32, Scaling::kTile);
  add("h100 N_C=128 (tile, DeepSeek-V3)", Accum::kH100, kTile, Scaling::kTile);
  add("h100 no promotion (tensor)", Accum::kH100, 0, Scaling::kTensor);
  return m;
}

PrecisionRow compare_logits(const Mat& reference, const Mat& test) {
  if (reference.rows() != test.rows() || reference.cols() != test.cols()) {
    throw std::invalid_argument("compare_logits: shapes differ");
  }
  PrecisionRow r;
  r.positions = reference.rows();
  const double den = reference.cast<double>().norm();
  r.rel_error = den > 0 ? (test - reference).cast<double>().norm() / den : 0.0;
  int64_t agree = 0;
  double kl_sum = 0;
  for (int64_t t = 0; t < reference.rows(); ++t) {
    Eigen::Index a, b;
    reference.row(t).maxCoeff(&a);
    test.row(t).maxCoeff(&b);
    agree += a == b;
    // KL(p || q) with log-softmax in double.
    const Eigen::RowVectorXd lp = reference.row(t).cast<double>(), lq = test.row(t).cast<double>();
    const double mp = lp.maxCoeff(), mq = lq.maxCoeff();
    const double zp = std::log((lp.array() - mp).exp().sum()) + mp;
    const double zq = std::log((lq.array() - mq).exp().sum()) + mq;
    double kl = 0;
    for (Eigen::Index v = 0; v < lp.size(); ++v) {
      const double logp = lp[v] - zp, logq = lq[v] - zq;
      kl += std::exp(logp) * (logp - logq);
    }
    kl = std::max(kl, 0.0);
    kl_sum += kl;
    r.kl_max = std::max(r.kl_max, kl);
  }
  if (r.positions > 0) {
    r.top1_agreement = static_cast<double>(agree) / static_cast<double>(r.positions);
    r.kl_mean = kl_sum / static_cast<double>(r.positions);
  }
  return r;
}

namespace {

// Per-position squared logit error and squared reference norm.
void position_errors(const Mat& ref, const Mat& test, std::vector<double>& num,
                     std::vector<double>& den) {
  num.resize(static_cast<size_t>(ref.rows()));
  den.resize(static_cast<size_t>(ref.rows()));
  for (int64_t t = 0; t < ref.rows(); ++t) {
    num[static_cast<size_t>(t)] = (test.row(t) - ref.row(t)).cast<double>().squaredNorm();
    den[static_cast<size_t>(t)] = ref.row(t).cast<double>().squaredNorm();
  }
}

// Standard error of sqrt(sum num / sum den) when the positions are a sample: a bootstrap over
// positions, deterministic (splitmix64, fixed seed).
double bootstrap_se(const std::vector<double>& num, const std::vector<double>& den) {
  const size_t n = num.size();
  if (n < 2) return 0.0;
  uint64_t state = 0x5EED;
  auto next = [&state] {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  constexpr int kResamples = 400;
  double sum = 0, sum2 = 0;
  for (int b = 0; b < kResamples; ++b) {
    double a = 0, d = 0;
    for (size_t i = 0; i < n; ++i) {
      const size_t k = static_cast<size_t>(next() % n);
      a += num[k];
      d += den[k];
    }
    const double r = d > 0 ? std::sqrt(a / d) : 0.0;
    sum += r;
    sum2 += r * r;
  }
  const double mean = sum / kResamples;
  return std::sqrt(std::max(0.0, sum2 / kResamples - mean * mean));
}

// Chosen experts per (position, layer) as sets; empty for dense layers.
std::vector<std::vector<std::vector<int>>> routing_of(const model::Trace& tr) {
  std::vector<std::vector<std::vector<int>>> out;
  for (const model::TokenTrace& t : tr.tokens) {
    auto& per_layer = out.emplace_back();
    for (const model::LayerTrace& l : t.layers) {
      std::vector<int> e = l.router.topk_idx;
      std::sort(e.begin(), e.end());
      per_layer.push_back(std::move(e));
    }
  }
  return out;
}

}  // namespace

std::vector<PrecisionRow> compare_precisions(const model::Model& m, std::span<const int32_t> ids,
                                             const std::vector<PrecisionMode>& modes,
                                             std::shared_ptr<const io::Checkpoint> checkpoint) {
  auto run = [&](model::ForwardOptions opt, model::Trace* trace) {
    model::KVCache cache = m.new_cache(model::AttnImpl::kNaive);
    opt.trace = trace;
    return m.forward(ids, cache, opt);
  };
  auto run_fp8 = [&](const Fp8LinearOptions& o, model::Trace* trace) {
    model::ForwardOptions opt;
    opt.linear = make_linear_hook(o, checkpoint);
    return run(opt, trace);
  };
  model::Trace ref_trace;
  ref_trace.top_k = 0;
  const Mat ref = run({}, &ref_trace);
  const auto ref_routes = routing_of(ref_trace);
  std::map<Scaling, Mat> exact;  // FP8 with exact accumulation, per scaling
  std::vector<PrecisionRow> rows;
  std::vector<double> num, den;
  for (const PrecisionMode& mode : modes) {
    model::Trace trace;
    trace.top_k = 0;
    const Mat logits = run_fp8(mode.options, &trace);
    PrecisionRow r = compare_logits(ref, logits);
    r.label = mode.label;
    if (!exact.count(mode.options.scaling)) {
      Fp8LinearOptions e = mode.options;
      e.gemm = {Accum::kExact, kTile};
      exact[mode.options.scaling] =
          mode.options.gemm.accum == Accum::kExact ? logits : run_fp8(e, nullptr);
    }
    const Mat& ex = exact[mode.options.scaling];
    const double exn = ex.cast<double>().norm();
    r.accum_rel_error = exn > 0 ? (logits - ex).cast<double>().norm() / exn : 0.0;

    position_errors(ref, logits, num, den);
    r.rel_error_se = bootstrap_se(num, den);
    const auto routes = routing_of(trace);
    int64_t decisions = 0, flips = 0;
    double same_num = 0, same_den = 0;
    for (size_t t = 0; t < routes.size() && t < ref_routes.size(); ++t) {
      bool same = true;
      for (size_t l = 0; l < routes[t].size() && l < ref_routes[t].size(); ++l) {
        if (ref_routes[t][l].empty()) continue;
        ++decisions;
        if (routes[t][l] != ref_routes[t][l]) {
          ++flips;
          same = false;
        }
      }
      if (same) {
        same_num += num[t];
        same_den += den[t];
      }
    }
    r.route_flips = decisions > 0 ? static_cast<double>(flips) / static_cast<double>(decisions) : 0;
    r.rel_error_same_routing = same_den > 0 ? std::sqrt(same_num / same_den) : 0.0;
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace dsv3::fp8
