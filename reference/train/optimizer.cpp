#include "reference/train/optimizer.h"

#include <fmt/format.h>

#include <Eigen/Core>
#if defined(__AVX__) || defined(__SSE2__)
#include <immintrin.h>
#endif
#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "reference/balance/metrics.h"
#include "reference/fp8/format.h"

namespace dsv3::train {

namespace {
bool is_bias(const std::string& name) {
  return name.find("e_score_correction_bias") != std::string::npos;
}
}  // namespace

double grad_norm(const model::Config& c, const model::ModelWeights& grad) {
  std::vector<const float*> data;
  std::vector<int64_t> sizes;
  model::visit_model(c, grad, [&](const std::string& name, const auto& t) {
    if (is_bias(name)) return;
    data.push_back(t.data());
    sizes.push_back(t.size());
  });
  // One partial sum per tensor, added in a fixed order: the norm does not depend on threads.
  std::vector<double> part(data.size(), 0.0);
#pragma omp parallel for schedule(dynamic)
  for (size_t k = 0; k < data.size(); ++k) {
    double s = 0;
    for (int64_t i = 0; i < sizes[k]; ++i) s += static_cast<double>(data[k][i]) * data[k][i];
    part[k] = s;
  }
  double sq = 0;
  for (double s : part) sq += s;
  return std::sqrt(sq);
}

float clip_scale(double norm, double max_norm) {
  return max_norm > 0 && norm > max_norm ? static_cast<float>(max_norm / (norm + 1e-6)) : 1.0f;
}

double clip_grad_norm(const model::Config& c, model::ModelWeights& grad, double max_norm) {
  const double norm = grad_norm(c, grad);
  const float scale = clip_scale(norm, max_norm);
  if (scale != 1.0f) model::visit_model(c, grad, [&](const std::string&, auto& t) { t *= scale; });
  return norm;
}

AdamWState adamw_init(const model::Config& c, const model::ModelWeights& w) {
  AdamWState s;
  s.m = zeros_like(c, w);
  s.v = zeros_like(c, w);
  return s;
}

namespace {

// The tensors AdamW updates (every one but the correction biases), as parallel pointer lists.
struct AdamWTensors {
  std::vector<float*> w, m, v;
  std::vector<const float*> g;
  std::vector<int64_t> size;
  std::vector<bool> decay;  // >= 2 dimensions
};

AdamWTensors adamw_tensors(const model::Config& c, model::ModelWeights& w,
                           const model::ModelWeights& grad, AdamWState& state) {
  AdamWTensors t;
  model::visit_model(c, w, [&](const std::string& name, auto& x) {
    if (is_bias(name)) return;
    t.w.push_back(x.data());
    t.size.push_back(x.size());
    t.decay.push_back(std::decay_t<decltype(x)>::ColsAtCompileTime != 1);
  });
  auto collect = [](auto& into) {
    return [&into](const std::string& name, auto& x) {
      if (!is_bias(name)) into.push_back(x.data());
    };
  };
  model::visit_model(c, grad, collect(t.g));
  model::visit_model(c, state.m, collect(t.m));
  model::visit_model(c, state.v, collect(t.v));
  return t;
}

// The scalars of one step, each rounded to float once, as both forms use them.
struct AdamWCoeffs {
  float step_size, bc2_sqrt, b1, b2, eps, wd, grad_scale;
  bool bf16;
};

AdamWCoeffs adamw_coeffs(int64_t t, double lr, const AdamWOptions& opt, float grad_scale) {
  const double bc1 = 1.0 - std::pow(opt.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(opt.beta2, static_cast<double>(t));
  return {static_cast<float>(lr / bc1),
          static_cast<float>(std::sqrt(bc2)),
          static_cast<float>(opt.beta1),
          static_cast<float>(opt.beta2),
          static_cast<float>(opt.eps),
          static_cast<float>(1.0 - lr * opt.weight_decay),
          grad_scale,
          opt.bf16_moments};
}

// Elements per piece of the fast form: five arrays of 2048 floats (40 KiB) stay in L2 between
// the statements of one piece, and big tensors split into pieces that both threads share.
constexpr int64_t kAdamWPiece = 2048;
// Elements per piece when zeroing the gradient buffer (256 KiB).
constexpr int64_t kZeroPiece = 65536;

// out[i] = sqrt(in[i]), correctly rounded (IEEE), in the widest SIMD the build has.
void sqrt_into(float* out, const float* in, int64_t n) {
  int64_t i = 0;
#if defined(__AVX__)
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_sqrt_ps(_mm256_loadu_ps(in + i)));
#elif defined(__SSE2__)
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(out + i, _mm_sqrt_ps(_mm_loadu_ps(in + i)));
#endif
  for (; i < n; ++i) out[i] = std::sqrt(in[i]);
}

// The fast form on one piece [n]: the plain loop's operations, in the same order and with the
// same float roundings, as whole-array Eigen statements that vectorise (sqrt and divide are
// correctly rounded in every SIMD width, and the build contracts no multiply-add), so the
// result is bit-identical to adamw_step_plain's.
void adamw_piece(float* p, const float* g, float* m, float* v, int64_t n, bool decay,
                 const AdamWCoeffs& k) {
  using A = Eigen::Map<Eigen::ArrayXf>;
  A P(p, n), M(m, n), V(v, n);
  const Eigen::Map<const Eigen::ArrayXf> G(g, n);
  if (decay) P *= k.wd;
  const float one_minus_b1 = 1.0f - k.b1, one_minus_b2 = 1.0f - k.b2;
  M += (G * k.grad_scale - M) * one_minus_b1;
  V = V * k.b2 + (one_minus_b2 * (G * k.grad_scale)) * (G * k.grad_scale);
  if (k.bf16) {
    M = M.unaryExpr([](float x) { return fp8::bf16_round(x); });
    V = V.unaryExpr([](float x) { return fp8::bf16_round(x); });
  }
  // sqrt(v) through the instruction, not Eigen's .sqrt(): with EIGEN_FAST_MATH (Eigen's
  // default) its AVX float sqrt is a reciprocal-sqrt estimate and one Newton step, which is
  // not correctly rounded and flushes subnormals.
  alignas(32) float root[kAdamWPiece];
  sqrt_into(root, v, n);
  Eigen::Map<Eigen::ArrayXf> R(root, n);
  P -= k.step_size * (M / (R / k.bc2_sqrt + k.eps));
}

}  // namespace

void zero_grad(const model::Config& c, model::ModelWeights& grad) {
  std::vector<std::pair<float*, int64_t>> pieces;  // (first element, count)
  model::visit_model(c, grad, [&](const std::string&, auto& t) {
    for (int64_t i = 0; i < t.size(); i += kZeroPiece)
      pieces.emplace_back(t.data() + i, std::min<int64_t>(kZeroPiece, t.size() - i));
  });
#pragma omp parallel for schedule(static)
  for (size_t q = 0; q < pieces.size(); ++q) std::fill_n(pieces[q].first, pieces[q].second, 0.0f);
}

void adamw_step_plain(const model::Config& c, model::ModelWeights& w,
                      const model::ModelWeights& grad, AdamWState& state, double lr,
                      const AdamWOptions& opt, float grad_scale) {
  const AdamWCoeffs k = adamw_coeffs(++state.step, lr, opt, grad_scale);
  const AdamWTensors t = adamw_tensors(c, w, grad, state);
#pragma omp parallel for schedule(dynamic)
  for (size_t j = 0; j < t.w.size(); ++j) {
    float* p = t.w[j];
    const float* g = t.g[j];
    float* m = t.m[j];
    float* v = t.v[j];
    for (int64_t i = 0; i < t.size[j]; ++i) {
      const float gi = g[i] * k.grad_scale;  // clipped, as torch's (x * 1 == x)
      if (t.decay[j]) p[i] *= k.wd;
      m[i] += (gi - m[i]) * (1.0f - k.b1);  // torch: exp_avg.lerp_(grad, 1 - beta1)
      v[i] = v[i] * k.b2 + (1.0f - k.b2) * gi * gi;
      if (k.bf16) {
        m[i] = fp8::bf16_round(m[i]);
        v[i] = fp8::bf16_round(v[i]);
      }
      const float denom = std::sqrt(v[i]) / k.bc2_sqrt + k.eps;
      p[i] -= k.step_size * (m[i] / denom);
    }
  }
}

void adamw_step(const model::Config& c, model::ModelWeights& w, const model::ModelWeights& grad,
                AdamWState& state, double lr, const AdamWOptions& opt, float grad_scale) {
  const AdamWCoeffs k = adamw_coeffs(++state.step, lr, opt, grad_scale);
  const AdamWTensors t = adamw_tensors(c, w, grad, state);
  // Pieces of every tensor, in one list, so that the embedding and the head (a third of the
  // small config's parameters) are shared by the threads instead of going to one each.
  std::vector<std::pair<size_t, int64_t>> pieces;  // (tensor, first element)
  for (size_t j = 0; j < t.w.size(); ++j)
    for (int64_t i = 0; i < t.size[j]; i += kAdamWPiece) pieces.emplace_back(j, i);
#pragma omp parallel for schedule(dynamic, 16)
  for (size_t q = 0; q < pieces.size(); ++q) {
    const auto [j, i] = pieces[q];
    const int64_t n = std::min(kAdamWPiece, t.size[j] - i);
    adamw_piece(t.w[j] + i, t.g[j] + i, t.m[j] + i, t.v[j] + i, n, t.decay[j], k);
  }
}

void update_biases(const model::Config& c, model::ModelWeights& w, const LossParts& step,
                   double gamma) {
  for (size_t l = 0; l < step.moe_layers.size(); ++l) {
    VecT<float>* b = correction_bias(c, w, step.moe_layers[l]);
    if (!b) continue;
    const auto& counts = step.expert_counts[l];
    double mean = 0;
    for (int64_t n : counts) mean += static_cast<double>(n);
    mean /= static_cast<double>(counts.size());
    for (size_t i = 0; i < counts.size(); ++i) {
      const double gap = mean - static_cast<double>(counts[i]);  // underloaded: push up
      const float sign = gap > 0 ? 1.0f : (gap < 0 ? -1.0f : 0.0f);
      (*b)[static_cast<Eigen::Index>(i)] += static_cast<float>(gamma) * sign;
    }
  }
}

std::vector<double> step_max_vio(const LossParts& step) {
  std::vector<double> out;
  for (const auto& counts : step.expert_counts) out.push_back(balance::max_vio(counts));
  return out;
}

Schedule parse_schedule(const std::string& s) {
  if (s == "constant") return Schedule::kConstant;
  if (s == "cosine") return Schedule::kCosine;
  throw std::invalid_argument(
      fmt::format("unknown schedule '{}' (expected constant or cosine)", s));
}

const char* to_string(Schedule s) {
  return s == Schedule::kConstant ? "constant" : "cosine";
}

double learning_rate(Schedule s, double peak, int64_t step, int64_t n_steps, int64_t warmup) {
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (s == Schedule::kConstant) return peak;
  // V3 §4.2 in fractions of the run: constant until 10T/14.8T, cosine over 4.3T to 0.1x,
  // 333B at 2.2e-5, the last 167B at 7.3e-6.
  const double x = static_cast<double>(step) / static_cast<double>(n_steps);
  const double c0 = 10.0 / 14.8, c1 = 14.3 / 14.8, c2 = 14.633 / 14.8;
  if (x < c0) return peak;
  if (x < c1) {
    const double u = (x - c0) / (c1 - c0);
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + std::cos(std::numbers::pi * u)));
  }
  if (x < c2) return 0.1 * peak;
  return peak * 7.3e-6 / 2.2e-4;
}

}  // namespace dsv3::train
