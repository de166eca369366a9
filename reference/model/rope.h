// Rotary position embedding on interleaved pairs (x[2j], x[2j+1]) with the YaRN frequency
// correction (Peng et al. 2023; DeepSeek-V3 §4.3 extends context 4K -> 128K with it).
#pragma once

#include <vector>

#include "reference/model/config.h"
#include "reference/model/tensor.h"

namespace dsv3::model {

struct RopeTable {
  int dim = 0;                    // d^R_h (qk_rope_head_dim)
  std::vector<float> inv_freq;    // f'_j for the dim/2 pairs (YaRN-corrected when enabled)
  std::vector<float> base_freq;   // f_j = base^(-2j/dim) before correction
  std::vector<float> ramp;        // YaRN ramp gamma_j in [0,1] (0 = keep, 1 = interpolate)
  double low = 0, high = 0;       // YaRN correction range, in pair indices
  float attention_factor = 1.0f;  // multiplies cos and sin: mscale/mscale_all_dim (HF)

  // Rotates each of the `heads` consecutive dim-wide slices of x in place at position pos.
  void apply(float* x, int heads, int64_t pos) const;
};

// model_spec §6. corr_dim(r) = dim * ln(L_orig / (2 pi r)) / (2 ln base); ramp between
// floor(corr_dim(beta_fast)) and ceil(corr_dim(beta_slow)); f' = f/s * ramp + f * (1 - ramp).
RopeTable make_rope_table(const Config& c);

// get_mscale(s, m) = 1 if s <= 1 else 0.1 m ln(s) + 1
double yarn_get_mscale(double factor, double mscale);

}  // namespace dsv3::model
