#include "reference/model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace dsv3::model {

double yarn_get_mscale(double factor, double mscale) {
  return factor <= 1.0 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
}

RopeTable make_rope_table(const Config& c) {
  RopeTable t;
  t.dim = static_cast<int>(c.qk_rope_head_dim);
  const int half = t.dim / 2;
  const double base = c.rope_theta;
  t.base_freq.resize(half);
  t.inv_freq.resize(half);
  t.ramp.assign(half, 0.0f);
  for (int j = 0; j < half; ++j) {
    // f_j = 1 / base^(2j/dim), computed in float32 like arange(0, dim, 2) / dim in PyTorch.
    float exponent = static_cast<float>(2 * j) / static_cast<float>(t.dim);
    t.base_freq[j] = 1.0f / std::pow(static_cast<float>(base), exponent);
    t.inv_freq[j] = t.base_freq[j];
  }
  const RopeScaling& y = c.rope_scaling;
  if (!y.yarn) return t;

  auto corr_dim = [&](double rotations) {
    return t.dim *
           std::log(static_cast<double>(y.original_max_position_embeddings) /
                    (rotations * 2.0 * std::numbers::pi)) /
           (2.0 * std::log(base));
  };
  t.low = std::max(std::floor(corr_dim(y.beta_fast)), 0.0);
  t.high = std::min(std::ceil(corr_dim(y.beta_slow)), static_cast<double>(t.dim - 1));
  if (t.low == t.high) t.high += 0.001;  // avoid a zero-width ramp
  for (int j = 0; j < half; ++j) {
    // HF: inv_freq_extrapolation = f, inv_freq_interpolation = 1 / (s * base^(2j/dim)),
    // extrapolation_factor = 1 - ramp; f' = interp * (1 - extrap) + extrap_freq * extrap.
    float ramp = static_cast<float>(std::clamp((j - t.low) / (t.high - t.low), 0.0, 1.0));
    float extrapolation = 1.0f - ramp;
    float pos_freq =
        std::pow(static_cast<float>(base), static_cast<float>(2 * j) / static_cast<float>(t.dim));
    float interp = 1.0f / (static_cast<float>(y.factor) * pos_freq);
    float extrap = 1.0f / pos_freq;
    t.ramp[j] = ramp;
    t.inv_freq[j] = interp * (1.0f - extrapolation) + extrap * extrapolation;
  }
  // HF scales cos/sin by get_mscale(s, mscale) / get_mscale(s, mscale_all_dim) when both are
  // given (1 for V3), else by get_mscale(s, 1); an explicit attention_factor wins.
  double factor;
  if (y.attention_factor > 0)
    factor = y.attention_factor;
  else if (y.mscale != 0 && y.mscale_all_dim != 0)
    factor = yarn_get_mscale(y.factor, y.mscale) / yarn_get_mscale(y.factor, y.mscale_all_dim);
  else
    factor = yarn_get_mscale(y.factor, 1.0);
  t.attention_factor = static_cast<float>(factor);
  return t;
}

void RopeTable::apply(float* x, int heads, int64_t pos) const {
  const int half = dim / 2;
  // cos/sin of pos * f'_j in float32, as HF computes inv_freq @ position_ids in float32.
  float cs[256], sn[256];
  for (int j = 0; j < half; ++j) {
    float angle = static_cast<float>(pos) * inv_freq[j];
    cs[j] = std::cos(angle) * attention_factor;
    sn[j] = std::sin(angle) * attention_factor;
  }
  for (int h = 0; h < heads; ++h) {
    float* v = x + static_cast<size_t>(h) * dim;
    for (int j = 0; j < half; ++j) {
      float re = v[2 * j], im = v[2 * j + 1];
      v[2 * j] = re * cs[j] - im * sn[j];
      v[2 * j + 1] = re * sn[j] + im * cs[j];
    }
  }
}

}  // namespace dsv3::model
