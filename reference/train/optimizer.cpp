#include "reference/train/optimizer.h"

#include <fmt/format.h>

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

void adamw_step(const model::Config& c, model::ModelWeights& w, const model::ModelWeights& grad,
                AdamWState& state, double lr, const AdamWOptions& opt, float grad_scale) {
  ++state.step;
  const double bc1 = 1.0 - std::pow(opt.beta1, static_cast<double>(state.step));
  const double bc2 = 1.0 - std::pow(opt.beta2, static_cast<double>(state.step));
  const float step_size = static_cast<float>(lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float b1 = static_cast<float>(opt.beta1), b2 = static_cast<float>(opt.beta2);
  const float eps = static_cast<float>(opt.eps);
  std::vector<float*> wp, mp, vp;
  std::vector<const float*> gp;
  std::vector<int64_t> sizes;
  std::vector<bool> decay;
  model::visit_model(c, w, [&](const std::string& name, auto& t) {
    if (is_bias(name)) return;
    wp.push_back(t.data());
    sizes.push_back(t.size());
    decay.push_back(std::decay_t<decltype(t)>::ColsAtCompileTime != 1);  // >= 2 dimensions
  });
  auto collect = [](auto& into) {
    return [&into](const std::string& name, auto& t) {
      if (!is_bias(name)) into.push_back(t.data());
    };
  };
  model::visit_model(c, grad, collect(gp));
  model::visit_model(c, state.m, collect(mp));
  model::visit_model(c, state.v, collect(vp));
  const float wd = static_cast<float>(1.0 - lr * opt.weight_decay);
#pragma omp parallel for schedule(dynamic)
  for (size_t k = 0; k < wp.size(); ++k) {
    float* p = wp[k];
    const float* g = gp[k];
    float* m = mp[k];
    float* v = vp[k];
    for (int64_t i = 0; i < sizes[k]; ++i) {
      const float gi = grad_scale == 1.0f ? g[i] : g[i] * grad_scale;  // clipped, as torch's
      if (decay[k]) p[i] *= wd;
      m[i] += (gi - m[i]) * (1.0f - b1);  // torch: exp_avg.lerp_(grad, 1 - beta1)
      v[i] = v[i] * b2 + (1.0f - b2) * gi * gi;
      if (opt.bf16_moments) {
        m[i] = fp8::bf16_round(m[i]);
        v[i] = fp8::bf16_round(v[i]);
      }
      const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
      p[i] -= step_size * (m[i] / denom);
    }
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
