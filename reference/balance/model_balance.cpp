#include "reference/balance/model_balance.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "reference/balance/metrics.h"
#include "reference/balance/rng.h"

namespace dsv3::balance {

ModelBalancer::ModelBalancer(const model::Config& c, float gamma, UpdateRule rule) : gamma_(gamma) {
  if (c.n_routed_experts <= 0)
    throw std::invalid_argument("the model has no routed experts to balance");
  if (!c.has_correction_bias())
    throw std::invalid_argument(
        "the model's router has no correction bias (topk_method is not noaux_tc)");
  slot_.assign(static_cast<size_t>(c.num_hidden_layers), -1);
  for (int l = 0; l < c.num_hidden_layers; ++l)
    if (c.is_moe_layer(l)) {
      slot_[l] = static_cast<int>(moe_layers_.size());
      moe_layers_.push_back(l);
      balancers_.emplace_back(static_cast<int>(c.n_routed_experts), gamma, rule);
    }
}

void ModelBalancer::set_enabled(bool on) {
  enabled_ = on;
  for (auto& b : balancers_) b.set_enabled(on);
}

void ModelBalancer::set_gamma(float gamma) {
  gamma_ = gamma;
  for (auto& b : balancers_) b.set_gamma(gamma);
}

void ModelBalancer::set_rule(UpdateRule rule) {
  for (auto& b : balancers_) b.set_rule(rule);
}

BiasBalancer& ModelBalancer::layer(int l) {
  if (l < 0 || l >= static_cast<int>(slot_.size()) || slot_[l] < 0)
    throw std::out_of_range("ModelBalancer: not a MoE layer");
  return balancers_[slot_[l]];
}

const BiasBalancer& ModelBalancer::layer(int l) const {
  return const_cast<ModelBalancer*>(this)->layer(l);
}

void ModelBalancer::observe(const model::TokenTrace& t) {
  for (const model::LayerTrace& lt : t.layers)
    if (lt.moe && lt.layer >= 0 && lt.layer < static_cast<int>(slot_.size()) &&
        slot_[lt.layer] >= 0)
      balancers_[slot_[lt.layer]].observe(lt.router.topk_idx);
}

void ModelBalancer::observe(const model::Trace& trace, size_t first_token) {
  for (size_t i = first_token; i < trace.tokens.size(); ++i) observe(trace.tokens[i]);
}

int64_t ModelBalancer::tokens() const {
  return balancers_.empty() ? 0 : balancers_[0].tokens();
}

std::vector<StepStats> ModelBalancer::step(model::Model& m) {
  std::vector<StepStats> out;
  for (size_t i = 0; i < balancers_.size(); ++i) {
    auto& moe = m.mutable_weights().layers.at(moe_layers_[i]).moe;
    if (!moe || moe->e_score_correction_bias.size() != balancers_[i].n_experts())
      throw std::invalid_argument("ModelBalancer: the model's layer has no correction bias");
    Vec& b = moe->e_score_correction_bias;  // float32, as it must be (research notes §7)
    out.push_back(balancers_[i].step(std::span<float>(b.data(), static_cast<size_t>(b.size()))));
  }
  return out;
}

std::vector<double> ModelBalancer::mean_maxvio_history() const {
  if (balancers_.empty()) return {};
  std::vector<double> m(balancers_[0].history().size(), 0.0);
  for (const auto& b : balancers_)
    for (size_t s = 0; s < m.size() && s < b.history().size(); ++s)
      m[s] += b.history()[s].maxvio / static_cast<double>(balancers_.size());
  return m;
}

namespace {

// Token ids with Zipf-distributed frequencies over a shuffled vocabulary (ids 2.. so that the
// special tokens stay out).
class TokenStream {
 public:
  // The shuffle (which ids are frequent) depends on `seed` only; `sample_seed` picks the draws,
  // so a held-out stream has the same distribution as the training stream.
  TokenStream(int64_t vocab, double zipf, uint64_t seed, uint64_t sample_seed) : rng_(sample_seed) {
    const int64_t first = vocab > 4 ? 2 : 0;
    ids_.resize(static_cast<size_t>(vocab - first));
    std::iota(ids_.begin(), ids_.end(), static_cast<int32_t>(first));
    Rng shuffle(seed ^ 0x77);
    for (size_t i = ids_.size(); i > 1; --i) std::swap(ids_[i - 1], ids_[shuffle.next() % i]);
    cdf_.resize(ids_.size());
    double total = 0;
    for (size_t k = 0; k < ids_.size(); ++k) total += cdf_[k] = std::pow(k + 1.0, -zipf);
    double run = 0;
    for (double& v : cdf_) v = (run += v) / total;
  }
  std::vector<int32_t> next(int n) {
    std::vector<int32_t> out(n);
    for (int32_t& id : out) {
      const size_t k = std::lower_bound(cdf_.begin(), cdf_.end(), rng_.uniform()) - cdf_.begin();
      id = ids_[std::min(k, ids_.size() - 1)];
    }
    return out;
  }

 private:
  Rng rng_;
  std::vector<int32_t> ids_;
  std::vector<double> cdf_;
};

}  // namespace

ModelBalanceResult run_model_balance(model::Model& m, const ModelBalanceConfig& c,
                                     const std::function<void(int, double)>& on_step) {
  if (c.tokens <= 0 || c.tokens_per_batch <= 0 || c.seq_len <= 0)
    throw std::invalid_argument(
        "balance model: tokens, tokens per batch and sequence length must be positive");
  const model::Config& cfg = m.config();
  ModelBalancer balancer(cfg, c.gamma, c.rule);
  ModelBalanceResult r;
  r.model = cfg.name;
  r.moe_layers = balancer.moe_layers();
  const int L = static_cast<int>(r.moe_layers.size());
  auto biases = [&] {
    std::vector<std::vector<float>> b;
    for (int l : r.moe_layers) {
      const Vec& v = m.weights().layers[l].moe->e_score_correction_bias;
      b.emplace_back(v.data(), v.data() + v.size());
    }
    return b;
  };
  // Runs `n` tokens in sequences of seq_len, handing each sequence's trace to `sink`.
  auto run = [&](TokenStream& s, int n, const std::function<void(const model::Trace&)>& sink) {
    for (int done = 0; done < n;) {
      const int len = std::min(c.seq_len, n - done);
      const std::vector<int32_t> ids = s.next(len);
      model::KVCache cache = m.new_cache(model::AttnImpl::kAbsorbed);
      model::Trace trace;
      trace.top_k = 0;
      model::ForwardOptions opt;
      opt.trace = &trace;
      m.forward(ids, cache, opt);
      sink(trace);
      done += len;
    }
  };
  auto heldout = [&](std::vector<double>& maxvio, std::vector<std::vector<double>>* loads) {
    TokenStream s(cfg.vocab_size, c.zipf, c.seed, c.seed * 1000003 + 12345);
    LoadMeter meter(L, static_cast<int>(cfg.n_routed_experts));
    run(s, c.heldout_tokens, [&](const model::Trace& tr) {
      for (const auto& t : tr.tokens)
        for (int i = 0; i < L; ++i) meter.add(i, t.layers[r.moe_layers[i]].router.topk_idx);
    });
    maxvio.clear();
    for (int i = 0; i < L; ++i) {
      maxvio.push_back(meter.max_vio(i));
      if (loads) loads->push_back(load_fractions(meter.counts(i)));
    }
  };

  r.bias_before = biases();
  if (c.heldout_tokens > 0) heldout(r.maxvio_global_before, nullptr);
  TokenStream train(cfg.vocab_size, c.zipf, c.seed, c.seed);
  r.maxvio_batch.assign(L, {});
  int in_batch = 0, step = 0;
  auto end_batch = [&] {
    const std::vector<StepStats> st = balancer.step(m);
    double mean = 0;
    for (int i = 0; i < L; ++i) {
      r.maxvio_batch[i].push_back(st[i].maxvio);
      mean += st[i].maxvio / L;
    }
    r.maxvio_batch_mean.push_back(mean);
    if (on_step) on_step(step, mean);
    ++step;
    in_batch = 0;
  };
  run(train, c.tokens, [&](const model::Trace& tr) {
    for (const auto& t : tr.tokens) {
      balancer.observe(t);
      if (++in_batch == c.tokens_per_batch) end_batch();
    }
  });
  if (in_batch > 0) end_batch();
  r.bias_after = biases();
  if (c.heldout_tokens > 0) heldout(r.maxvio_global_after, &r.load_after);
  auto mean = [](const std::vector<double>& v) {
    return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  };
  r.mean_global_before = mean(r.maxvio_global_before);
  r.mean_global_after = mean(r.maxvio_global_after);
  return r;
}

}  // namespace dsv3::balance
