// The DeepSeekMoE gate for one token (DeepSeek-V3 §2.1.2, eq. 12-16; V2 softmax variants).
// A pure function shared by the model, the balance lab and the explorer.
#pragma once

#include <limits>
#include <span>
#include <vector>

#include "reference/model/config.h"

namespace dsv3::model {

struct RouteResult {
  std::vector<float> logits;        // u_t . e_i, before the score function          [N_r]
  std::vector<float> scores;        // s_{i,t}: sigmoid (eq. 15) or softmax (V2)      [N_r]
  std::vector<float> biased;        // s_{i,t} + b_i, used only for selection (eq. 16) [N_r]
  std::vector<float> group_scores;  // per group: top-2 sum of biased (bias) or max   [n_group]
  std::vector<int> groups_kept;     // the topk_group best groups, best first         [M]
  std::vector<int> topk_idx;        // chosen experts, best biased score first       [K_r]
  std::vector<float> topk_weight;   // g_{i,t}: normalised (eq. 13) and scaled       [K_r]
};

struct RouterOptions {
  // Fill for experts of dropped groups: -inf (official inference code) or 0 (Hugging Face).
  float masked_fill = -std::numeric_limits<float>::infinity();
};

// bias may be empty (no correction bias: V2, V2-Lite).
RouteResult route(const Config& c, std::span<const float> logits, std::span<const float> bias,
                  const RouterOptions& opt = {});

}  // namespace dsv3::model
