// Auxiliary-loss-free load balancing (DeepSeek-V3 §2.1.2; Wang et al. 2024, "Loss-Free
// Balancing", Algorithm 1). After each batch every overloaded expert's routing bias goes down
// by gamma and every underloaded one's goes up; the bias enters only the selection (eq. 16).
//
// Precision rules (known bugs of public implementations, research notes §7): biases are float32
// and counts are int64 end to end; a bf16 bias cannot resolve 1e-3 steps near 5, and bf16 counts
// near 40K can flip the sign of c̄ - c_i.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "reference/model/router.h"

namespace dsv3::balance {

enum class UpdateRule {
  kSign,     // b_i += γ·sign(c̄ − c_i), sign(0) = 0 (the paper)
  kCentred,  // the sign step minus its mean over experts (torchtitan): same routing, no drift
  kRaw,      // b_i += γ·(c̄ − c_i)/c̄ (Loss-Free Balancing Table 3 variant, normalised error)
};

UpdateRule parse_rule(std::string_view name);  // "sign" | "centred" (or "centered") | "raw"
std::string_view rule_name(UpdateRule rule);

// The bias increment for one batch's expert counts c_i (tokens routed to expert i) [N].
// All-zero counts give a zero step.
std::vector<float> bias_delta(std::span<const int64_t> counts, float gamma, UpdateRule rule);

// b += bias_delta(counts, gamma, rule).
void update_bias(std::span<float> bias, std::span<const int64_t> counts, float gamma,
                 UpdateRule rule);

// What one balancing step saw and did.
struct StepStats {
  int64_t step = 0;
  int64_t tokens = 0;    // tokens counted in the batch
  double maxvio = 0;     // MaxVio_batch of the counts (before the update)
  int overloaded = 0;    // experts with c_i > c̄
  int underloaded = 0;   // experts with c_i < c̄
  double bias_mean = 0;  // after the update: the common-mode drift
  double bias_min = 0;
  double bias_max = 0;
};

// Counts the experts chosen for a stream of tokens in ONE MoE layer and, at the end of each
// batch, moves that layer's biases. The explorer's "balancing on/off + γ" toggle drives one of
// these per MoE layer: observe() the RouteResult of every token as it is stepped or generated,
// then step(bias) with the layer's e_score_correction_bias. When disabled, step() still records
// the statistics but leaves the bias alone.
class BiasBalancer {
 public:
  explicit BiasBalancer(int n_experts, float gamma = 1e-3f, UpdateRule rule = UpdateRule::kSign);

  int n_experts() const { return static_cast<int>(counts_.size()); }
  float gamma() const { return gamma_; }
  void set_gamma(float gamma) { gamma_ = gamma; }
  UpdateRule rule() const { return rule_; }
  void set_rule(UpdateRule rule) { rule_ = rule; }
  bool enabled() const { return enabled_; }
  void set_enabled(bool on) { enabled_ = on; }

  // One token's chosen experts (RouteResult::topk_idx). Padding tokens must not be observed.
  void observe(std::span<const int> experts);
  void observe(const model::RouteResult& r) { observe(r.topk_idx); }
  // A batch of tokens: topk_idx is [T, k] row-major.
  void observe_batch(std::span<const int> topk_idx, int k);

  const std::vector<int64_t>& counts() const { return counts_; }  // since the last step
  int64_t tokens() const { return tokens_; }

  // End of a batch: MaxVio of the counts, then (if enabled and any token was seen) the bias
  // update; the counts restart from zero. `bias` is the layer's b [N], float32.
  StepStats step(std::span<float> bias);

  const std::vector<StepStats>& history() const { return history_; }
  void clear_history() { history_.clear(); }

 private:
  std::vector<int64_t> counts_;
  int64_t tokens_ = 0;
  float gamma_;
  UpdateRule rule_;
  bool enabled_ = true;
  std::vector<StepStats> history_;
};

}  // namespace dsv3::balance
