// Load-balance metrics (Loss-Free Balancing eq. 4): MaxVio = (max_i Load_i − Load̄) / Load̄,
// with Load̄ = tokens·K/N the load under perfect balance. MaxVio_batch counts one training batch,
// MaxVio_global a whole held-out stream; both are reported per MoE layer and averaged.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dsv3::balance {

// MaxVio of expert counts; Load̄ = Σc/N (= tokens·K/N, nothing is dropped). 0 for no tokens.
double max_vio(std::span<const int64_t> counts);
double max_vio(std::span<const double> loads);

// Per-expert share of all assignments, c_i / Σc (sums to 1; uniform = 1/N).
std::vector<double> load_fractions(std::span<const int64_t> counts);

// The common mode and spread of a bias vector: routing ignores the mean, not the spread.
struct BiasDrift {
  double mean = 0;
  double min = 0;
  double max = 0;
  double stddev = 0;
};
BiasDrift bias_drift(std::span<const float> bias);

// Expert counts of several MoE layers over a stream (MaxVio_global when the stream is a
// held-out set): counts[layer][expert].
class LoadMeter {
 public:
  LoadMeter(int n_layers, int n_experts);
  void add(int layer, std::span<const int> experts);  // one token's choices
  void clear();
  int n_layers() const { return static_cast<int>(counts_.size()); }
  const std::vector<int64_t>& counts(int layer) const { return counts_[layer]; }
  double max_vio(int layer) const;
  double mean_max_vio() const;  // averaged over layers, as the papers report it

 private:
  std::vector<std::vector<int64_t>> counts_;
};

}  // namespace dsv3::balance
