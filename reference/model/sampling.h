// Next-token selection: greedy, temperature, nucleus (top-p); seeded and reproducible.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dsv3::model {

struct SamplingParams {
  double temperature = 0.0;  // 0 = greedy (argmax)
  double top_p = 1.0;        // keep the smallest set of tokens whose probability reaches top_p
  uint64_t seed = 0;
};

// A small counter-based generator (splitmix64): the same stream on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  double uniform();  // [0, 1)
 private:
  uint64_t state_;
};

int32_t argmax(std::span<const float> logits);
// Probabilities after temperature and top-p (zero outside the nucleus), summing to 1.
std::vector<double> sampling_distribution(std::span<const float> logits, const SamplingParams& p);
int32_t sample(std::span<const float> logits, const SamplingParams& p, Rng& rng);

}  // namespace dsv3::model
