// Loss-free balancing on the reference model's own routers: weights frozen, tokens flowing, the
// per-layer correction biases b_i (e_score_correction_bias) updated after every batch.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "reference/balance/bias_update.h"
#include "reference/model/model.h"
#include "reference/model/trace.h"

namespace dsv3::balance {

// One BiasBalancer per MoE layer of a model: the explorer's "balancing on/off + γ" toggle.
// observe() each token's trace as it is computed; step() at the end of a batch (or after every
// token when stepping interactively) moves the model's live biases.
class ModelBalancer {
 public:
  explicit ModelBalancer(const model::Config& c, float gamma = 1e-3f,
                         UpdateRule rule = UpdateRule::kSign);

  void set_enabled(bool on);
  bool enabled() const { return enabled_; }
  void set_gamma(float gamma);
  float gamma() const { return gamma_; }
  void set_rule(UpdateRule rule);

  const std::vector<int>& moe_layers() const { return moe_layers_; }  // model layer indices
  BiasBalancer& layer(int model_layer);
  const BiasBalancer& layer(int model_layer) const;

  void observe(const model::TokenTrace& t);  // every MoE layer's topk_idx of one token
  void observe(const model::Trace& trace, size_t first_token = 0);
  int64_t tokens() const;  // observed since the last step

  // End of a batch: per MoE layer MaxVio_batch, then (if enabled) b += Δb in the model's
  // weights. Returns one StepStats per MoE layer, in moe_layers() order.
  std::vector<StepStats> step(model::Model& m);
  // MaxVio_batch averaged over MoE layers, per step so far.
  std::vector<double> mean_maxvio_history() const;

 private:
  std::vector<int> moe_layers_;
  std::vector<int> slot_;  // model layer -> index into balancers_ (-1: dense)
  std::vector<BiasBalancer> balancers_;
  float gamma_;
  bool enabled_ = true;
};

struct ModelBalanceConfig {
  std::string model = "tiny";  // built-in name, config.json or checkpoint folder
  int tokens = 8192;           // training-stream tokens
  int tokens_per_batch = 128;  // one bias update per batch
  int seq_len = 64;            // tokens per sequence (a fresh KV cache each)
  float gamma = 1e-3f;
  UpdateRule rule = UpdateRule::kSign;
  double zipf = 1.1;          // token ids drawn from a Zipf law over a shuffled vocabulary
  int heldout_tokens = 1024;  // MaxVio_global before and after
  uint64_t seed = 0;
};

struct ModelBalanceResult {
  std::string model;
  std::vector<int> moe_layers;
  std::vector<std::vector<double>> maxvio_batch;  // [MoE layer][step]
  std::vector<double> maxvio_batch_mean;          // [step] averaged over MoE layers
  std::vector<double> maxvio_global_before;       // [MoE layer] held-out, initial biases
  std::vector<double> maxvio_global_after;        // [MoE layer] held-out, final biases
  std::vector<std::vector<float>> bias_before;    // [MoE layer][N]
  std::vector<std::vector<float>> bias_after;     // [MoE layer][N]
  std::vector<std::vector<double>> load_after;    // [MoE layer][N] held-out load fractions
  double mean_global_before = 0, mean_global_after = 0;
};

// Runs the stream through `m` (its biases are updated in place).
ModelBalanceResult run_model_balance(
    model::Model& m, const ModelBalanceConfig& c,
    const std::function<void(int step, double mean_maxvio)>& on_step = {});

}  // namespace dsv3::balance
