#include "reference/model/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace dsv3::model {

uint64_t Rng::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Rng::uniform() {
  return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
}

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

std::vector<double> sampling_distribution(std::span<const float> logits, const SamplingParams& p) {
  if (p.temperature <= 0)
    throw std::invalid_argument("sampling_distribution needs temperature > 0");
  if (p.top_p <= 0 || p.top_p > 1) throw std::invalid_argument("top_p must be in (0, 1]");
  const size_t n = logits.size();
  std::vector<double> prob(n);
  double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += prob[i] = std::exp((logits[i] - mx) / p.temperature);
  for (double& v : prob) v /= sum;
  if (p.top_p < 1) {
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return prob[a] > prob[b]; });
    double acc = 0;
    size_t keep = 0;
    while (keep < n && acc < p.top_p) acc += prob[order[keep++]];
    for (size_t i = keep; i < n; ++i) prob[order[i]] = 0;
    for (double& v : prob) v /= acc;
  }
  return prob;
}

int32_t sample(std::span<const float> logits, const SamplingParams& p, Rng& rng) {
  if (p.temperature <= 0) return argmax(logits);
  std::vector<double> prob = sampling_distribution(logits, p);
  double u = rng.uniform(), acc = 0;
  for (size_t i = 0; i < prob.size(); ++i) {
    acc += prob[i];
    if (u < acc) return static_cast<int32_t>(i);
  }
  // Rounding left u above the last partial sum: take the last token with mass.
  for (size_t i = prob.size(); i-- > 0;)
    if (prob[i] > 0) return static_cast<int32_t>(i);
  return 0;
}

}  // namespace dsv3::model
