// Micro configs and helpers for the trainer's tests: small enough for finite differences in
// double over every tensor, shaped to exercise every path (YaRN, groups, q_lora null, softmax
// scores, MTP depth 2).
#pragma once

#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "reference/model/config.h"
#include "reference/model/weights.h"
#include "reference/train/objective.h"

namespace dsv3::train::testing {

struct MicroOptions {
  bool yarn = true;
  bool q_lora = true;
  bool softmax = false;  // V2-style softmax scores, group max, no correction bias
  int mtp = 1;           // MTP modules
  int experts = 8, topk = 2, groups = 4, topk_group = 2;
};

inline model::Config micro_config(const MicroOptions& o = {}) {
  nlohmann::json j = {
      {"model_type", "deepseek_v3"}, {"vocab_size", 23}, {"hidden_size", 16},
      {"intermediate_size", 24}, {"moe_intermediate_size", 8}, {"num_hidden_layers", 3},
      {"num_attention_heads", 2}, {"num_key_value_heads", 2},
      {"kv_lora_rank", 8}, {"qk_nope_head_dim", 4}, {"qk_rope_head_dim", 4}, {"v_head_dim", 6},
      {"n_routed_experts", o.experts}, {"n_shared_experts", 1}, {"num_experts_per_tok", o.topk},
      {"n_group", o.groups}, {"topk_group", o.topk_group}, {"first_k_dense_replace", 1},
      {"moe_layer_freq", 1}, {"routed_scaling_factor", 2.5}, {"norm_topk_prob", !o.softmax},
      {"scoring_func", o.softmax ? "softmax" : "sigmoid"},
      {"topk_method", o.softmax ? "group_limited_greedy" : "noaux_tc"}, {"hidden_act", "silu"},
      {"rms_norm_eps", 1e-6}, {"max_position_embeddings", 256}, {"rope_theta", 10000.0},
      {"num_nextn_predict_layers", o.mtp}, {"tie_word_embeddings", false},
      {"bos_token_id", 0}, {"eos_token_id", 1}};
  j["q_lora_rank"] = o.q_lora ? nlohmann::json(12) : nlohmann::json(nullptr);
  if (o.yarn)
    j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 16},
                         {"beta_fast", 32}, {"beta_slow", 1}, {"mscale", 1.0},
                         {"mscale_all_dim", 0.8}};
  return model::parse_config(j, "micro");
}

inline Batch random_batch(const model::Config& c, int64_t B, int64_t T, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(c.vocab_size) - 1);
  Batch b{B, T, {}};
  for (int64_t i = 0; i < B * T; ++i) b.ids.push_back(tok(gen));
  return b;
}

// Random weights whose correction biases are large enough to change the selection.
inline model::ModelWeights micro_weights(const model::Config& c, uint64_t seed) {
  model::ModelWeights w = model::random_weights(c, seed);
  model::visit_model(c, w, [&](const std::string& name, auto& t) {
    if (name.find("e_score_correction_bias") != std::string::npos) t *= 5.0f;
  });
  return w;
}

}  // namespace dsv3::train::testing
