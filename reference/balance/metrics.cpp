#include "reference/balance/metrics.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dsv3::balance {

double max_vio(std::span<const int64_t> counts) {
  if (counts.empty()) return 0;
  int64_t total = 0, mx = 0;
  for (int64_t c : counts) {
    total += c;
    mx = std::max(mx, c);
  }
  if (total == 0) return 0;
  const double mean = static_cast<double>(total) / static_cast<double>(counts.size());
  return (static_cast<double>(mx) - mean) / mean;  // eq. (4)
}

double max_vio(std::span<const double> loads) {
  if (loads.empty()) return 0;
  double total = 0, mx = loads[0];
  for (double c : loads) {
    total += c;
    mx = std::max(mx, c);
  }
  if (total <= 0) return 0;
  const double mean = total / static_cast<double>(loads.size());
  return (mx - mean) / mean;
}

std::vector<double> load_fractions(std::span<const int64_t> counts) {
  std::vector<double> f(counts.size(), 0.0);
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  if (total == 0) return f;
  for (size_t i = 0; i < counts.size(); ++i)
    f[i] = static_cast<double>(counts[i]) / static_cast<double>(total);
  return f;
}

BiasDrift bias_drift(std::span<const float> bias) {
  BiasDrift d;
  if (bias.empty()) return d;
  d.min = d.max = bias[0];
  double sum = 0, sq = 0;
  for (float b : bias) {
    sum += b;
    d.min = std::min<double>(d.min, b);
    d.max = std::max<double>(d.max, b);
  }
  d.mean = sum / static_cast<double>(bias.size());
  for (float b : bias) sq += (b - d.mean) * (b - d.mean);
  d.stddev = std::sqrt(sq / static_cast<double>(bias.size()));
  return d;
}

LoadMeter::LoadMeter(int n_layers, int n_experts)
    : counts_(static_cast<size_t>(std::max(0, n_layers)),
              std::vector<int64_t>(static_cast<size_t>(std::max(0, n_experts)), 0)) {}

void LoadMeter::add(int layer, std::span<const int> experts) {
  auto& c = counts_.at(static_cast<size_t>(layer));
  for (int e : experts) {
    if (e < 0 || e >= static_cast<int>(c.size())) throw std::out_of_range("LoadMeter: expert id");
    ++c[e];
  }
}

void LoadMeter::clear() {
  for (auto& c : counts_) std::fill(c.begin(), c.end(), 0);
}

double LoadMeter::max_vio(int layer) const {
  return balance::max_vio(counts_.at(layer));
}

double LoadMeter::mean_max_vio() const {
  if (counts_.empty()) return 0;
  double s = 0;
  for (const auto& c : counts_) s += balance::max_vio(c);
  return s / static_cast<double>(counts_.size());
}

}  // namespace dsv3::balance
