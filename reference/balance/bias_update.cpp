#include "reference/balance/bias_update.h"

#include <algorithm>
#include <stdexcept>

#include "reference/balance/metrics.h"

namespace dsv3::balance {

UpdateRule parse_rule(std::string_view name) {
  if (name == "sign") return UpdateRule::kSign;
  if (name == "centred" || name == "centered" || name == "mean-centred")
    return UpdateRule::kCentred;
  if (name == "raw") return UpdateRule::kRaw;
  throw std::invalid_argument("unknown bias update rule '" + std::string(name) +
                              "' (expected sign, centred or raw)");
}

std::string_view rule_name(UpdateRule rule) {
  switch (rule) {
    case UpdateRule::kSign:
      return "sign";
    case UpdateRule::kCentred:
      return "centred";
    case UpdateRule::kRaw:
      return "raw";
  }
  return "?";
}

std::vector<float> bias_delta(std::span<const int64_t> counts, float gamma, UpdateRule rule) {
  const size_t n = counts.size();
  std::vector<float> delta(n, 0.0f);
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  if (n == 0 || total == 0) return delta;
  // Compare N·c_i with Σc in integers: c̄ = Σc/N need not be an integer, and an exact
  // comparison keeps sign(0) = 0 exact (research notes §7, pitfall 3).
  const int64_t nn = static_cast<int64_t>(n);
  const double mean = static_cast<double>(total) / static_cast<double>(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t e = total - nn * counts[i];  // N·(c̄ − c_i)
    if (rule == UpdateRule::kRaw) {
      delta[i] = static_cast<float>(gamma * ((mean - static_cast<double>(counts[i])) / mean));
    } else {
      delta[i] = e > 0 ? gamma : (e < 0 ? -gamma : 0.0f);  // γ·sign(c̄ − c_i)
    }
  }
  if (rule == UpdateRule::kCentred) {
    // torchtitan: delta -= mean(delta), so the biases keep a zero common mode.
    double m = 0;
    for (float d : delta) m += d;
    m /= static_cast<double>(n);
    for (float& d : delta) d = static_cast<float>(d - m);
  }
  return delta;
}

void update_bias(std::span<float> bias, std::span<const int64_t> counts, float gamma,
                 UpdateRule rule) {
  if (bias.size() != counts.size())
    throw std::invalid_argument("update_bias: bias and counts differ in size");
  const std::vector<float> d = bias_delta(counts, gamma, rule);
  for (size_t i = 0; i < bias.size(); ++i) bias[i] += d[i];
}

BiasBalancer::BiasBalancer(int n_experts, float gamma, UpdateRule rule)
    : counts_(static_cast<size_t>(std::max(0, n_experts)), 0), gamma_(gamma), rule_(rule) {
  if (n_experts <= 0) throw std::invalid_argument("BiasBalancer: n_experts must be positive");
}

void BiasBalancer::observe(std::span<const int> experts) {
  const int n = n_experts();
  for (int e : experts) {
    if (e < 0 || e >= n) throw std::out_of_range("BiasBalancer: expert id out of range");
    ++counts_[e];
  }
  ++tokens_;
}

void BiasBalancer::observe_batch(std::span<const int> topk_idx, int k) {
  if (k <= 0 || topk_idx.size() % static_cast<size_t>(k))
    throw std::invalid_argument("BiasBalancer::observe_batch: size is not a multiple of k");
  const int n = n_experts();
  for (int e : topk_idx) {
    if (e < 0 || e >= n) throw std::out_of_range("BiasBalancer: expert id out of range");
    ++counts_[e];
  }
  tokens_ += static_cast<int64_t>(topk_idx.size()) / k;
}

StepStats BiasBalancer::step(std::span<float> bias) {
  if (static_cast<int>(bias.size()) != n_experts())
    throw std::invalid_argument("BiasBalancer::step: bias size != n_experts");
  StepStats s;
  s.step = static_cast<int64_t>(history_.size());
  s.tokens = tokens_;
  s.maxvio = max_vio(counts_);
  int64_t total = 0;
  for (int64_t c : counts_) total += c;
  const int64_t nn = n_experts();
  for (int64_t c : counts_) {
    if (nn * c > total) ++s.overloaded;
    if (nn * c < total) ++s.underloaded;
  }
  if (enabled_ && total > 0) update_bias(bias, counts_, gamma_, rule_);
  const BiasDrift d = bias_drift(bias);
  s.bias_mean = d.mean;
  s.bias_min = d.min;
  s.bias_max = d.max;
  std::fill(counts_.begin(), counts_.end(), 0);
  tokens_ = 0;
  history_.push_back(s);
  return s;
}

}  // namespace dsv3::balance
