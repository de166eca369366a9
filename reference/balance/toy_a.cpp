#include "reference/balance/toy_a.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "reference/balance/batch_router.h"
#include "reference/balance/metrics.h"
#include "reference/balance/rng.h"

namespace dsv3::balance {

int ToyAResult::first_below(double threshold) const {
  for (size_t i = 0; i < maxvio_batch.size(); ++i)
    if (maxvio_batch[i] < threshold) return static_cast<int>(i);
  return -1;
}

double ToyAResult::steady(int last_steps) const {
  if (maxvio_batch.empty()) return 0;
  const size_t n = std::min(maxvio_batch.size(), static_cast<size_t>(std::max(1, last_steps)));
  double s = 0;
  for (size_t i = maxvio_batch.size() - n; i < maxvio_batch.size(); ++i) s += maxvio_batch[i];
  return s / static_cast<double>(n);
}

double noise_floor(int experts, int tokens_per_batch, int top_k) {
  // The largest of N near-Poisson counts with mean m = T·K/N sits ≈ 2.4 standard deviations
  // above m for N = 64, so MaxVio ≈ 2.4·sqrt(m)/m = 2.4·sqrt(N/(T·K)).
  return 2.4 *
         std::sqrt(static_cast<double>(experts) / (static_cast<double>(tokens_per_batch) * top_k));
}

namespace {
void fill_normal(Mat& m, Rng& rng, double scale) {
  float* p = m.data();
  for (Eigen::Index i = 0; i < m.size(); ++i) p[i] = static_cast<float>(scale * rng.normal());
}
void fill_tokens(Mat& m, Rng& rng) {  // x ~ N(0, I_d), approximately
  float* p = m.data();
  for (Eigen::Index i = 0; i < m.size(); ++i) p[i] = rng.approx_normal();
}
}  // namespace

ToyAStream::ToyAStream(const ToyAConfig& c) : c_(c), state_(c.seed * 0x100000001b3ull + 1) {
  if (c.experts <= 0 || c.dim <= 0 || c.tokens_per_batch <= 0)
    throw std::invalid_argument("toy A: experts, dim and tokens per batch must be positive");
  Rng rng(c.seed);
  w_.resize(c.experts, c.dim);
  fill_normal(w_, rng, 1.0 / std::sqrt(static_cast<double>(c.dim)));  // W ~ N(0, 1/d)
  skew_.resize(c.experts);
  for (int i = 0; i < c.experts; ++i) skew_[i] = static_cast<float>(c.skew * rng.normal());
  x_.resize(c.tokens_per_batch, c.dim);
}

const Mat& ToyAStream::next_logits() {
  Rng rng(state_++ ^ 0x5bd1e995ull);
  fill_tokens(x_, rng);
  z_.noalias() = x_ * w_.transpose();  // [T, N] = x [T, d] · W^T
  z_.rowwise() += skew_.transpose();
  return z_;
}

Mat ToyAStream::logits_for(int tokens, uint64_t seed) const {
  Rng rng(seed);
  Mat x(tokens, c_.dim);
  fill_tokens(x, rng);
  Mat z = x * w_.transpose();
  z.rowwise() += skew_.transpose();
  return z;
}

ToyAResult run_toy_a(const ToyAConfig& c,
                     const std::function<void(int, double, const std::vector<float>&)>& on_step) {
  const model::Config rc = router_config(c.experts, c.top_k, c.groups, c.topk_groups);
  if (c.steps < 0) throw std::invalid_argument("toy A: steps must not be negative");
  ToyAStream stream(c);
  std::vector<float> bias(c.experts, 0.0f);
  BiasBalancer balancer(c.experts, c.gamma, c.rule);
  BatchRouting routing;
  ToyAResult r;

  // MaxVio_global over the held-out stream, in chunks of one batch.
  auto heldout_counts = [&](const std::vector<float>& b) {
    std::vector<int64_t> counts(c.experts, 0);
    const uint64_t seed = c.seed ^ 0xabcdef1234567ull;
    const int chunk = c.tokens_per_batch;
    BatchRouting hr;
    for (int done = 0, q = 0; done < c.heldout_tokens; done += chunk, ++q) {
      const int n = std::min(chunk, c.heldout_tokens - done);
      route_batch(rc, stream.logits_for(n, seed + static_cast<uint64_t>(q) * 7919), b, hr);
      for (int e : hr.topk_idx) ++counts[e];
    }
    return counts;
  };

  r.maxvio_batch.reserve(c.steps);
  for (int step = 0; step < c.steps; ++step) {
    route_batch(rc, stream.next_logits(), bias, routing);
    balancer.observe_batch(routing.topk_idx, c.top_k);
    const StepStats s = balancer.step(bias);
    r.maxvio_batch.push_back(s.maxvio);
    r.bias_mean.push_back(s.bias_mean);
    if (on_step) on_step(step, s.maxvio, bias);
    if (c.global_every > 0 && c.heldout_tokens > 0 && (step + 1) % c.global_every == 0 &&
        step + 1 < c.steps) {
      r.global_steps.push_back(step + 1);
      r.maxvio_global.push_back(max_vio(heldout_counts(bias)));
    }
  }
  if (c.heldout_tokens > 0) {
    r.counts_global = heldout_counts(bias);
    r.global_steps.push_back(c.steps);
    r.maxvio_global.push_back(max_vio(r.counts_global));
    r.load = load_fractions(r.counts_global);
    r.load_initial = load_fractions(heldout_counts(std::vector<float>(c.experts, 0.0f)));
  }
  r.bias = bias;
  return r;
}

}  // namespace dsv3::balance
