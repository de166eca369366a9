// Toy C (research notes §8): a learned router on a small regression task whose natural routing
// is imbalanced, trained with no balancing, with DeepSeek-V3's sequence-wise balance loss at
// several α, and with loss-free bias updates at several γ. Each run gives a task loss and a
// MaxVio_global, i.e. one point of the trade-off between quality and balance that Loss-Free
// Balancing's Fig. 2 / Table 2 is about.
//
// Task: 16 input clusters with Zipf(1.2) frequencies, x = μ_c + ε, target y = a_c·x (one linear
// map per cluster); N = 16 linear experts, top-2, sigmoid gate with top-K renormalised weights
// (eq. 13-16), MSE, Adam.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference/balance/bias_update.h"

namespace dsv3::balance {

enum class Balancing { kNone, kAuxLoss, kLossFree };
std::string_view balancing_name(Balancing b);

struct ToyCConfig {
  int dim = 16;
  int experts = 16;
  int top_k = 2;
  int clusters = 16;
  double zipf = 1.2;
  int tokens_per_batch = 512;  // also the "sequence" of the sequence-wise loss
  int steps = 4000;
  double lr = 1e-3;  // Adam; at 3e-3 the router outruns γ = 1e-3 (docs/balance.md)
  Balancing method = Balancing::kNone;
  double alpha = 0;     // aux-loss weight (kAuxLoss)
  float gamma = 1e-3f;  // bias update speed (kLossFree)
  UpdateRule rule = UpdateRule::kSign;
  uint64_t seed = 0;       // model init and training stream
  uint64_t task_seed = 0;  // the clusters and their maps
  int eval_tokens = 16384;
};

struct ToyCResult {
  double eval_mse = 0;               // task loss on the held-out set
  double maxvio_global = 0;          // on the held-out set, final biases
  std::vector<double> train_mse;     // [steps]
  std::vector<double> maxvio_batch;  // [steps]
  std::vector<double> load;          // [N] held-out load fractions
  std::vector<float> bias;           // [N] final biases (zero unless loss-free)
};

ToyCResult run_toy_c(const ToyCConfig& c);

// One method's setting, averaged over seeds.
struct TradeoffPoint {
  Balancing method = Balancing::kNone;
  double param = 0;  // α or γ (0 for none)
  double eval_mse = 0;
  double maxvio_global = 0;
  std::vector<double> eval_mse_seeds;
  std::vector<double> maxvio_seeds;
  std::vector<double> maxvio_batch;  // [steps] of the first seed, for plotting
};

// No balancing, the aux loss at each α (α = 0 is skipped: that is "none"), loss-free at each γ;
// `seeds` runs each (seeds 0..seeds-1). Runs in parallel (OpenMP).
std::vector<TradeoffPoint> run_tradeoff(const ToyCConfig& base, const std::vector<double>& alphas,
                                        const std::vector<double>& gammas, int seeds);

}  // namespace dsv3::balance
