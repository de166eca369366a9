// Toy A (research notes §8): a static random router with a per-expert logit skew, fed fresh
// Gaussian tokens every step. Nothing is trained; only the biases move, so the run isolates the
// dynamics of the bias update: MaxVio_batch falls from ≈4.4 to the multinomial noise floor
// ≈2.4·sqrt(N/(T·K)) in about (largest bias needed)/γ steps.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "reference/balance/bias_update.h"
#include "reference/model/tensor.h"

namespace dsv3::balance {

struct ToyAConfig {
  int experts = 64;             // N_r
  int top_k = 6;                // K_r (Loss-Free Balancing's 1B shape)
  int dim = 64;                 // d: tokens x ~ N(0, I_d), router W ~ N(0, 1/d)
  int tokens_per_batch = 4096;  // T
  int steps = 1000;
  float gamma = 1e-3f;
  double skew = 1.0;  // σ of the per-expert logit offset
  UpdateRule rule = UpdateRule::kSign;
  int groups = 1;  // expert groups (nodes); top-2-sum group score
  int topk_groups = 1;
  uint64_t seed = 0;
  int heldout_tokens = 262144;  // MaxVio_global set, drawn once from its own seed
  int global_every = 0;         // also measure MaxVio_global every this many steps (0: end only)
};

struct ToyAResult {
  std::vector<double> maxvio_batch;    // [steps] before each step's update
  std::vector<double> bias_mean;       // [steps] after each update (the drift)
  std::vector<int> global_steps;       // steps at which MaxVio_global was measured
  std::vector<double> maxvio_global;   // MaxVio_global there (the last entry: after the run)
  std::vector<float> bias;             // [N] final biases
  std::vector<double> load;            // [N] load fractions on the held-out set, final biases
  std::vector<double> load_initial;    // [N] the same with zero biases (the raw skew)
  std::vector<int64_t> counts_global;  // [N] held-out counts, final biases

  int first_below(double threshold) const;    // first step with MaxVio_batch < threshold, or -1
  double steady(int last_steps = 500) const;  // mean MaxVio_batch over the last steps
};

// The expected noise floor of MaxVio_batch for a perfectly balanced router (notes §8).
double noise_floor(int experts, int tokens_per_batch, int top_k);

// A stream of Toy A batches: the router and the skew are fixed, tokens are fresh each call.
class ToyAStream {
 public:
  explicit ToyAStream(const ToyAConfig& c);
  const Mat& next_logits();                         // [T, N] u_t·e_i + skew_i of a fresh batch
  Mat logits_for(int tokens, uint64_t seed) const;  // a separate (held-out) batch

 private:
  ToyAConfig c_;
  Mat w_;     // [N, d]
  Vec skew_;  // [N]
  uint64_t state_;
  Mat x_, z_;
};

// Runs the simulation; on_step (optional) sees (step, MaxVio_batch, biases after the update).
ToyAResult run_toy_a(
    const ToyAConfig& c,
    const std::function<void(int, double, const std::vector<float>&)>& on_step = {});

}  // namespace dsv3::balance
